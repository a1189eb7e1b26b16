# Ours (vgg-edge), not upstream: Debian 12's bare-metal RISC-V GCC (gcc-riscv64-unknown-elf) with picolibc
# (picolibc-riscv64-unknown-elf), the K210 SDK's -march/-mabi, and the libstdc++ that
# scripts/k210_firmware_toolchain.sh builds from gcc-12-source (LIBSTDCXX_DIR).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR riscv64)
set(CMAKE_C_COMPILER riscv64-unknown-elf-gcc)
set(CMAKE_CXX_COMPILER riscv64-unknown-elf-g++)
set(CMAKE_ASM_COMPILER riscv64-unknown-elf-gcc)
set(CMAKE_OBJCOPY riscv64-unknown-elf-objcopy)
set(CMAKE_SIZE riscv64-unknown-elf-size)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES LIBSTDCXX_DIR)
if(NOT LIBSTDCXX_DIR)
  message(FATAL_ERROR "LIBSTDCXX_DIR is not set: the libstdc++ of scripts/k210_firmware_toolchain.sh")
endif()
if(NOT PICOLIBC_INCLUDE)
  set(PICOLIBC_INCLUDE /usr/lib/picolibc/riscv64-unknown-elf/include)  # Debian's picolibc-riscv64-unknown-elf
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PICOLIBC_INCLUDE)
# The K210 SDK's own flags (cmake/compile-flags.cmake of kendryte-standalone-sdk). picolibc's specs are given
# to the linker only: as a compile option its -isystem would come before libstdc++'s headers, whose
# #include_next <stdlib.h> then finds nothing; the include folder and TLS model it sets are given here instead.
set(K210_ARCH_FLAGS_LIST -mcmodel=medany -mabi=lp64f -march=rv64imafc)
string(REPLACE ";" " " K210_ARCH_FLAGS "${K210_ARCH_FLAGS_LIST}")
set(K210_COMMON_FLAGS "-fno-common -ffunction-sections -fdata-sections -fstrict-volatile-bitfields -fno-zero-initialized-in-bss -ffast-math -fno-math-errno -fsingle-precision-constant -Os -ggdb -ftls-model=local-exec")
set(CMAKE_C_FLAGS_INIT "${K210_ARCH_FLAGS} ${K210_COMMON_FLAGS} -isystem ${PICOLIBC_INCLUDE}")
set(CMAKE_CXX_FLAGS_INIT "${K210_ARCH_FLAGS} ${K210_COMMON_FLAGS} -nostdinc++ -isystem ${LIBSTDCXX_DIR}/include/c++/12.2.0 -isystem ${LIBSTDCXX_DIR}/include/c++/12.2.0/riscv64-unknown-elf -isystem ${PICOLIBC_INCLUDE}")
set(CMAKE_ASM_FLAGS_INIT "${K210_ARCH_FLAGS} -isystem ${PICOLIBC_INCLUDE}")
# -nostartfiles (the SDK starts itself) is the board program's own link option: the qemu check uses picolibc's crt0.
set(CMAKE_EXE_LINKER_FLAGS_INIT "--specs=picolibc.specs -static -Wl,--gc-sections -Wl,-EL -Wl,--no-relax -L${LIBSTDCXX_DIR}/lib")
