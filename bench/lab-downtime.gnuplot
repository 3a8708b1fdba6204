# Plot of bench/lab-downtime: gnuplot -e "dat='...'; png='...'; subtitle='...'"
# bench/lab-downtime.gnuplot. dat columns: disks xl_guest_ms xl_migration_s
# legacy_guest_ms legacy_task_ms split_guest_ms split_task_ms (medians).
set terminal pngcairo size 800,500 font ",10"
set output png
set title "Live migration downtime on real Xen against the number of disks\n{/*0.8 ".subtitle."}"
set xlabel "disks (SMAPIv3 sample plugin: attach 300 ms, activate 10 ms)"
set ylabel "guest-side downtime (ms)"
set yrange [0:*]
set xrange [0.5:4.5]
set xtics (1, 2, 4)
set grid
set key top left
plot dat using 1:2 with linespoints lw 2 title "xl migrate (Xen's toolstack)", \
     dat using 1:4 with linespoints lw 2 title "xenops-c legacy (VBD plug inside the downtime)", \
     dat using 1:6 with linespoints lw 2 title "xenops-c split (early attach, activate inside)", \
     dat using 1:7 with points pt 6 ps 1.5 title "xenops-c split, its task's downtime figure"
