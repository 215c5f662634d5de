// arduino_stub.cpp - bodies for the declarations of the stub Arduino.h and a main that
// runs setup() and loop() as an Arduino core does, so the compiled sketch links into a
// freestanding Cortex-M4 image (tests/test_package.py). Serial has nothing to read.
#include "Arduino.h"

HardwareSerial Serial;

void HardwareSerial::begin(unsigned long baud) { (void)baud; }
int HardwareSerial::available() { return 0; }
int HardwareSerial::read() { return -1; }
size_t HardwareSerial::write(const uint8_t *buffer, size_t size) { (void)buffer; return size; }
size_t HardwareSerial::print(const char *s) { (void)s; return 0; }
size_t HardwareSerial::print(char c) { (void)c; return 1; }
size_t HardwareSerial::print(unsigned char n, int base) { return print((unsigned long)n, base); }
size_t HardwareSerial::print(int n, int base) { return print((long)n, base); }
size_t HardwareSerial::print(unsigned int n, int base) { return print((unsigned long)n, base); }
size_t HardwareSerial::print(long n, int base) { (void)n; (void)base; return 0; }
size_t HardwareSerial::print(unsigned long n, int base) { (void)n; (void)base; return 0; }
size_t HardwareSerial::println(void) { return 0; }
size_t HardwareSerial::println(const char *s) { return print(s); }
size_t HardwareSerial::println(char c) { return print(c); }
size_t HardwareSerial::println(unsigned char n, int base) { return print(n, base); }
size_t HardwareSerial::println(int n, int base) { return print(n, base); }
size_t HardwareSerial::println(unsigned int n, int base) { return print(n, base); }
size_t HardwareSerial::println(long n, int base) { return print(n, base); }
size_t HardwareSerial::println(unsigned long n, int base) { return print(n, base); }

unsigned long millis(void) { return 0; }

void setup();
void loop();

int main()
{
    setup();
    for (int i = 0; i < 3; i++) loop();
    return 0;
}
