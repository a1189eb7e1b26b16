/*
 * Ours (vgg-edge): nncase 1.9's runtime on a RISC-V CPU without a KPU, for `make kmodel-riscv-check`.
 *
 * Built by firmware/k210/CMakeLists.txt for qemu's `virt` machine: the same runtime sources as the board
 * firmware, with the k210 module's software KPU path (NNCASE_SIMULATOR), the K210's -march/-mabi and the
 * SDK's float flags. Files come and go by semihosting (picolibc's libsemihost):
 *
 *   nncase_riscv_check MODEL.kmodel INPUTS.bin COUNT OUTPUTS.bin
 *
 * INPUTS.bin holds COUNT inputs back to back, each exactly the kmodel's input tensor (uint8, planar RGB, the
 * bytes nncase's Python simulator is given); OUTPUTS.bin gets each run's first output tensor, back to back.
 * The calls are those of the SDK's lib/nncase/v1/nncase_v1.cpp (what kpu_run_kmodel does on the board).
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nncase/runtime/interpreter.h>
#include <nncase/runtime/k210/runtime_module.h>
#include <nncase/runtime/runtime_loader.h>
#include <nncase/runtime/runtime_op_utility.h>
extern "C" {
#include <semihost.h> // a C header without extern "C" of its own
}

using namespace nncase;
using namespace nncase::runtime;

// With NNCASE_SIMULATOR the k210 module leaves the table of built-in modules to its host; the runtime core is
// built for bare metal (no dlopen), so this program gives it the k210 module, as the module does on the board.
extern "C" void RUNTIME_MODULE_ACTIVATOR_NAME(result<std::unique_ptr<runtime_module>> &result);

namespace nncase::runtime
{
runtime_registration builtin_runtimes[] = { { k210::k210_module_type, RUNTIME_MODULE_ACTIVATOR_NAME }, {} };
}

namespace
{
int fail(const char *what, const char *detail)
{
    std::printf("{\"error\": \"%s\", \"detail\": \"%s\"}\n", what, detail);
    return 1;
}

std::unique_ptr<uint8_t[]> read_file(const char *path, size_t &size)
{
    FILE *file = std::fopen(path, "rb");
    if (!file)
        return nullptr;
    std::fseek(file, 0, SEEK_END);
    size = (size_t)std::ftell(file);
    std::fseek(file, 0, SEEK_SET);
    // The kmodel's sections are read in place: keep the buffer as aligned as the board's (128 bytes).
    std::unique_ptr<uint8_t[]> data(new (std::align_val_t(128)) uint8_t[size]);
    size_t got = std::fread(data.get(), 1, size, file);
    std::fclose(file);
    if (got != size)
        return nullptr;
    return data;
}

result<void> run_one(interpreter &interp, const uint8_t *input, FILE *out)
{
    auto &shape = interp.input_shape(0);
    auto type = interp.input_desc(0).datatype;
    try_var(input_tensor, hrt::create(type, shape, { (gsl::byte *)input, get_bytes(type, shape) }, false,
                                      hrt::pool_shared));
    try_(hrt::sync(input_tensor, hrt::sync_write_back));
    try_(interp.input_tensor(0, input_tensor));
    try_(interp.run());
    try_var(tensor, interp.output_tensor(0));
    try_var(host_tensor, tensor.as_host());
    try_var(map, hrt::map(host_tensor, hrt::map_read));
    auto buffer = map.buffer();
    if (std::fwrite(buffer.data(), 1, buffer.size_bytes(), out) != buffer.size_bytes())
        return err(std::errc::io_error);
    return ok();
}
}

// picolibc's semihosting start-up calls main() without arguments: the command line (qemu's
// -semihosting-config arg=...) is asked for here and split at spaces.
int split_command_line(char *line, char **argv, int most)
{
    int argc = 0;
    for (char *token = std::strtok(line, " "); token && argc < most; token = std::strtok(nullptr, " "))
        argv[argc++] = token;
    return argc;
}

int main()
{
    static char line[1024];
    char *argv[8];
    if (sys_semihost_get_cmdline(line, sizeof(line)) != 0)
        return fail("no semihosting command line", "run under qemu with -semihosting-config enable=on,arg=...");
    int argc = split_command_line(line, argv, 8);
    if (argc != 5)
        return fail("usage", "nncase_riscv_check MODEL.kmodel INPUTS.bin COUNT OUTPUTS.bin");
    size_t model_size = 0, inputs_size = 0;
    auto model = read_file(argv[1], model_size);
    if (!model)
        return fail("cannot read the kmodel", argv[1]);
    auto inputs = read_file(argv[2], inputs_size);
    if (!inputs)
        return fail("cannot read the inputs", argv[2]);
    long count = std::strtol(argv[3], nullptr, 10);

    interpreter interp;
    auto loaded = interp.load_model({ reinterpret_cast<const gsl::byte *>(model.get()), model_size });
    if (!loaded.is_ok())
        return fail("load_model failed", loaded.unwrap_err().message().c_str());
    size_t input_bytes = get_bytes(interp.input_desc(0).datatype, interp.input_shape(0));
    if (count <= 0 || inputs_size != input_bytes * (size_t)count)
        return fail("INPUTS.bin is not COUNT inputs of the kmodel's input size", argv[2]);

    FILE *out = std::fopen(argv[4], "wb");
    if (!out)
        return fail("cannot write the outputs", argv[4]);
    for (long i = 0; i < count; i++)
    {
        auto ran = run_one(interp, inputs.get() + i * input_bytes, out);
        if (!ran.is_ok())
        {
            std::fclose(out);
            return fail("run failed", ran.unwrap_err().message().c_str());
        }
    }
    std::fclose(out);
    std::printf("{\"runs\": %ld, \"input_bytes\": %zu, \"nncase\": \"1.9.0\"}\n", count, input_bytes);
    return 0;
}
