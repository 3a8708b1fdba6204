# Plot of bench/downtime: gnuplot -e "dat='...'; png='...'; subtitle='...'"
# bench/downtime.gnuplot. dat columns: disks legacy_ms split_ms legacy_min
# legacy_max split_min split_max (medians, then the range of the samples).
set terminal pngcairo size 800,500 font ",10"
set output png
set title "Migration downtime against the number of disks\n{/*0.8 ".subtitle."}"
set xlabel "disks (attach 300 ms, activate 10 ms)"
set ylabel "downtime (ms, log scale)"
set logscale y
set yrange [1:*]
set xrange [-0.5:16.5]
set xtics (0, 1, 2, 4, 8, 16)
set grid
set key top left
plot dat using 1:2:4:5 with yerrorlines lw 2 title "legacy (VBD plug inside the downtime)", \
     dat using 1:3:6:7 with yerrorlines lw 2 title "split (early attach, activate inside)"
