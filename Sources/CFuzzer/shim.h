#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver (linked by -sanitize=fuzzer). The fuzz targets call it
// from their own entry point, because SwiftPM names an executable's entry
// point itself and libFuzzer's main() would clash with it.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
