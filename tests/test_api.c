/* placeholder: replaced by the module owner */
#include <stdio.h>
int main(void) { puts("placeholder"); return 77; }
