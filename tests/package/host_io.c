/* host_io.c - bep_test_print on the host: standard output. tests/test_package.py */
#include <stdio.h>

#include "bep_test_io.h"

void bep_test_print(const char *s)
{
    fputs(s, stdout);
}
