// train_main.cpp - train_main.c compiled as C++ against the C library (tests/test_package.py):
// the generated headers give C linkage, so this links with the objects compiled as C.
#include "train_main.c"
