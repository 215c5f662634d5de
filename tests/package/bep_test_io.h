/* bep_test_io.h - how train_main.c prints a line: stdout on the host (host_io.c),
 * semihosting on Cortex-M (cortexm_start.c). tests/test_package.py */
#ifndef BEP_TEST_IO_H
#define BEP_TEST_IO_H

#ifdef __cplusplus
extern "C" {
#endif

/* Prints the NUL-terminated text s (which ends with its newline). */
void bep_test_print(const char *s);

#ifdef __cplusplus
}
#endif

#endif /* BEP_TEST_IO_H */
