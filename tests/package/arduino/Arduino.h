/*
 * Arduino.h - NOT Arduino's header: the few declarations of the Arduino core that the
 * generated sketch uses (Serial's begin/available/read/write/print/println, millis), with
 * the same shapes (Print's overloads of print and println), so tests/test_package.py can
 * compile the sketch as C++ for Cortex-M4 without an Arduino core installed.
 */
#ifndef BEP_TEST_ARDUINO_H
#define BEP_TEST_ARDUINO_H

#include <stddef.h>
#include <stdint.h>

#define DEC 10

class HardwareSerial {
public:
    void begin(unsigned long baud);
    int available();
    int read();
    size_t write(const uint8_t *buffer, size_t size);
    size_t print(const char *s);
    size_t print(char c);
    size_t print(unsigned char n, int base = DEC);
    size_t print(int n, int base = DEC);
    size_t print(unsigned int n, int base = DEC);
    size_t print(long n, int base = DEC);
    size_t print(unsigned long n, int base = DEC);
    size_t println(void);
    size_t println(const char *s);
    size_t println(char c);
    size_t println(unsigned char n, int base = DEC);
    size_t println(int n, int base = DEC);
    size_t println(unsigned int n, int base = DEC);
    size_t println(long n, int base = DEC);
    size_t println(unsigned long n, int base = DEC);
};

extern HardwareSerial Serial;

unsigned long millis(void);

#endif /* BEP_TEST_ARDUINO_H */
