/*
 * Ours (vgg-edge): the K210 board program. Camera frame (OV2640 on the DVP) -> model_k210.kmodel (nncase 1.9,
 * kmodel V5, run by the SDK's kpu_run_kmodel on nncase 1.9's runtime, built from source by
 * firmware/k210/CMakeLists.txt) -> one JSON line per frame on the UART (115200 baud) and, on a board with an
 * LCD (boards.h), the camera frame with the label and score over it (lcd.c).
 *
 * At start it runs the kmodel once on a test photo linked in beside it (vgg_edge_selftest.h, written by
 * `make firmware`) and prints its scores next to nncase's simulator's for the same input: the chip's KPU
 * and this runtime checked against the simulator before the camera starts.
 *
 * Two facts of nncase 1.9's runtime shape it (read in its sources): the k210 module ignores the DMA
 * channel it is given and always uses channel 0, so nothing else here may use DMA channel 0; and the
 * runtime's module lookup never returns for a module type it does not know, so `make firmware` checks the
 * kmodel's module types (k210, stackvm) before building.
 */
#include <stdio.h>
#include <string.h>
#include <bsp.h>
#include <dvp.h>
#include <encoding.h>
#include <fpioa.h>
#include <kpu.h>
#include <plic.h>
#include <sysctl.h>
#include <uarths.h>
#include "boards.h"
#include "k210_labels.h" /* K210_LABELS, K210_NUM_CLASSES, K210_INPUT_W, K210_INPUT_H: from `make kmodel` */
#include "ov2640.h"
#include "vgg_edge_selftest.h" /* VGG_EDGE_SELFTEST_INPUT, _EXPECTED, _FILE: from `make firmware` */
#if VGG_EDGE_HAS_LCD
#include "lcd.h"
#endif

#define CAMERA_W 320
#define CAMERA_H 240
#define KMODEL_DMA_CHANNEL DMAC_CHANNEL0 /* what nncase 1.9's k210 module uses whatever it is given */

extern const uint8_t vgg_edge_kmodel[];     /* board/kmodel_blob.S */
extern const uint8_t vgg_edge_kmodel_end[];

/* The kmodel's input: planar uint8 R, G, B (NCHW), K210_INPUT_W x K210_INPUT_H, values 0..255. */
static uint8_t g_model_in[K210_INPUT_W * K210_INPUT_H * 3] __attribute__((aligned(128)));
static kpu_model_context_t g_task;
static volatile int g_ai_done;
#if VGG_EDGE_HAS_CAMERA || VGG_EDGE_HAS_LCD
/* RGB565, two pixels a 32-bit word: the DVP's display output, and what the LCD shows. */
static uint32_t g_display_buf[CAMERA_W * CAMERA_H / 2] __attribute__((aligned(64)));
#endif

static double elapsed_ms(uint64_t started)
{
    return (double)(read_cycle() - started) * 1000.0 / sysctl_clock_get_freq(SYSCTL_CLOCK_CPU);
}

#if VGG_EDGE_HAS_LCD
/* The label and its score over the top of the frame, then the frame on the LCD; returns the ms it took. */
static double show(const char *label, float score, const char *note)
{
    uint64_t started = read_cycle();
    char line[48];
    int percent = (int)(score * 100.0f + 0.5f);
    snprintf(line, sizeof(line), " %s %d%% ", label, percent);
    lcd_fill(g_display_buf, 0, 0, LCD_W, 36, LCD_BLACK);
    lcd_text(g_display_buf, 0, 2, line, 2, percent >= 50 ? LCD_GREEN : LCD_YELLOW, LCD_BLACK);
    if (note)
        lcd_text(g_display_buf, 0, 36, note, 1, LCD_WHITE, LCD_BLACK);
    lcd_draw_frame(g_display_buf);
    return elapsed_ms(started);
}
#endif

static void on_ai_done(void *userdata)
{
    (void)userdata;
    g_ai_done = 1;
}

static int best_class(const float *scores)
{
    int best = 0;
    for (int i = 1; i < K210_NUM_CLASSES; i++)
        if (scores[i] > scores[best])
            best = i;
    return best;
}

/* One inference; returns the output scores (float32, K210_NUM_CLASSES) or NULL, and the time it took. */
static const float *run_model(const uint8_t *input, double *latency_ms)
{
    uint64_t started = read_cycle();
    g_ai_done = 0;
    if (kpu_run_kmodel(&g_task, input, KMODEL_DMA_CHANNEL, on_ai_done, NULL) != 0)
        return NULL;
    while (!g_ai_done)
        ;
    uint8_t *output;
    size_t output_bytes;
    if (kpu_get_output(&g_task, 0, &output, &output_bytes) != 0 || output_bytes != K210_NUM_CLASSES * sizeof(float))
        return NULL;
    *latency_ms = elapsed_ms(started);
    return (const float *)output;
}

static void self_test(void)
{
    double latency_ms = 0;
    memcpy(g_model_in, VGG_EDGE_SELFTEST_INPUT, sizeof(g_model_in));
    const float *scores = run_model(g_model_in, &latency_ms);
    if (!scores)
    {
        printf("{\"selftest\": \"kpu_run_kmodel failed\"}\n");
        return;
    }
    float max_diff = 0;
    printf("{\"selftest\": {\"image\": \"%s\", \"scores\": [", VGG_EDGE_SELFTEST_FILE);
    for (int i = 0; i < K210_NUM_CLASSES; i++)
    {
        float diff = scores[i] - VGG_EDGE_SELFTEST_EXPECTED[i];
        max_diff = diff < 0 ? (-diff > max_diff ? -diff : max_diff) : (diff > max_diff ? diff : max_diff);
        printf(i ? ", %.6f" : "%.6f", scores[i]);
    }
    printf("], \"simulator\": [");
    for (int i = 0; i < K210_NUM_CLASSES; i++)
        printf(i ? ", %.6f" : "%.6f", VGG_EDGE_SELFTEST_EXPECTED[i]);
    printf("], \"max_abs_diff\": %.6f, \"latency_ms\": %.2f}}\n", max_diff, latency_ms);
#if VGG_EDGE_HAS_LCD
    int best = best_class(scores);
    char note[40];
    snprintf(note, sizeof(note), "self-test: max diff %.4f", (double)max_diff);
    show(K210_LABELS[best], scores[best], note);
#endif
}

#if VGG_EDGE_HAS_CAMERA
/* The DVP writes planar R, G, B (CAMERA_W x CAMERA_H each) into its "AI" buffer. */
static uint8_t g_ai_buf[CAMERA_W * CAMERA_H * 3] __attribute__((aligned(128)));
static volatile int g_frame_done;

static int on_dvp_irq(void *ctx)
{
    (void)ctx;
    if (dvp_get_interrupt(DVP_STS_FRAME_FINISH))
    {
        dvp_config_interrupt(DVP_CFG_START_INT_ENABLE | DVP_CFG_FINISH_INT_ENABLE, 0);
        dvp_clear_interrupt(DVP_STS_FRAME_FINISH);
        g_frame_done = 1;
    }
    else
    {
        dvp_start_convert();
        dvp_clear_interrupt(DVP_STS_FRAME_START);
    }
    return 0;
}

/* Squash-resize each plane to the model's size, nearest pixel (make convert's default `--resize squash`;
 * the converter interpolates, this picks: the difference is part of what a board run shows). The DVP
 * writes memory behind the CPU's cache: the planes are read through the SRAM's uncached alias (kpu.h's
 * IOMEM), so no line of an earlier frame is read from the cache. */
static void resize_planes(const uint8_t *src, uint8_t *dst)
{
    src = (const uint8_t *)((uintptr_t)src - IOMEM);
    for (int c = 0; c < 3; c++)
    {
        const volatile uint8_t *plane = src + c * CAMERA_W * CAMERA_H;
        uint8_t *out = dst + c * K210_INPUT_W * K210_INPUT_H;
        for (int y = 0; y < K210_INPUT_H; y++)
        {
            const volatile uint8_t *row = plane + (y * CAMERA_H / K210_INPUT_H) * CAMERA_W;
            for (int x = 0; x < K210_INPUT_W; x++)
                out[y * K210_INPUT_W + x] = row[x * CAMERA_W / K210_INPUT_W];
        }
    }
}

static void camera_init(void)
{
    fpioa_set_function(VGG_EDGE_PIN_CMOS_PCLK, FUNC_CMOS_PCLK);
    fpioa_set_function(VGG_EDGE_PIN_CMOS_XCLK, FUNC_CMOS_XCLK);
    fpioa_set_function(VGG_EDGE_PIN_CMOS_HREF, FUNC_CMOS_HREF);
    fpioa_set_function(VGG_EDGE_PIN_CMOS_PWDN, FUNC_CMOS_PWDN);
    fpioa_set_function(VGG_EDGE_PIN_CMOS_VSYNC, FUNC_CMOS_VSYNC);
    fpioa_set_function(VGG_EDGE_PIN_CMOS_RST, FUNC_CMOS_RST);
    fpioa_set_function(VGG_EDGE_PIN_SCCB_SCLK, FUNC_SCCB_SCLK);
    fpioa_set_function(VGG_EDGE_PIN_SCCB_SDA, FUNC_SCCB_SDA);
    sysctl_set_spi0_dvp_data(1);

    dvp_init(8);
    dvp_set_xclk_rate(24000000);
    dvp_enable_burst();
    dvp_set_output_enable(0, 1); /* AI output: planar RGB888 */
    dvp_set_output_enable(1, 1); /* display output: RGB565 */
    dvp_set_image_format(DVP_CFG_RGB_FORMAT);
    dvp_set_image_size(CAMERA_W, CAMERA_H);
    ov2640_init();

    dvp_set_ai_addr((uint32_t)(uintptr_t)g_ai_buf, (uint32_t)(uintptr_t)(g_ai_buf + CAMERA_W * CAMERA_H),
                    (uint32_t)(uintptr_t)(g_ai_buf + CAMERA_W * CAMERA_H * 2));
    dvp_set_display_addr((uint32_t)(uintptr_t)g_display_buf);
    dvp_config_interrupt(DVP_CFG_START_INT_ENABLE | DVP_CFG_FINISH_INT_ENABLE, 0);
    dvp_disable_auto();

    plic_set_priority(IRQN_DVP_INTERRUPT, 1);
    plic_irq_register(IRQN_DVP_INTERRUPT, on_dvp_irq, NULL);
    plic_irq_enable(IRQN_DVP_INTERRUPT);
}

static void camera_loop(void)
{
    camera_init();
    for (unsigned long frame = 0;; frame++)
    {
        uint64_t started = read_cycle();
        g_frame_done = 0;
        dvp_clear_interrupt(DVP_STS_FRAME_START | DVP_STS_FRAME_FINISH);
        dvp_config_interrupt(DVP_CFG_START_INT_ENABLE | DVP_CFG_FINISH_INT_ENABLE, 1);
        while (!g_frame_done)
            ;
        resize_planes(g_ai_buf, g_model_in);
        double model_ms = 0;
        const float *scores = run_model(g_model_in, &model_ms);
        if (!scores)
        {
            printf("{\"frame\": %lu, \"error\": \"kpu_run_kmodel failed\"}\n", frame);
            continue;
        }
        int best = best_class(scores);
        double lcd_ms = 0;
#if VGG_EDGE_HAS_LCD
        char note[32];
        snprintf(note, sizeof(note), "KPU %.1f ms", model_ms);
        lcd_ms = show(K210_LABELS[best], scores[best], note);
#endif
        double frame_ms = elapsed_ms(started);
        printf("{\"frame\": %lu, \"label\": \"%s\", \"score\": %.4f, \"model_ms\": %.2f, \"lcd_ms\": %.2f, "
               "\"frame_ms\": %.2f}\n", frame, K210_LABELS[best], scores[best], model_ms, lcd_ms, frame_ms);
    }
}
#endif

int main(void)
{
    sysctl_pll_set_freq(SYSCTL_PLL0, 800000000UL);
    sysctl_pll_set_freq(SYSCTL_PLL1, 400000000UL); /* the KPU clock */
    uarths_init();
#ifdef VGG_EDGE_IO_BANKS_1V8
    const sysctl_power_bank_t banks_1v8[] = VGG_EDGE_IO_BANKS_1V8; /* the camera's and LCD's IO banks */
    for (size_t i = 0; i < sizeof(banks_1v8) / sizeof(banks_1v8[0]); i++)
        sysctl_set_power_mode(banks_1v8[i], SYSCTL_POWER_V18);
#endif
    plic_init();
    sysctl_enable_irq();

    unsigned long kmodel_bytes = (unsigned long)(vgg_edge_kmodel_end - vgg_edge_kmodel);
    printf("{\"vgg_edge\": \"%s\", \"kmodel_bytes\": %lu, \"input\": [3, %d, %d], \"classes\": %d}\n",
           VGG_EDGE_BOARD_NAME, kmodel_bytes, K210_INPUT_H, K210_INPUT_W, K210_NUM_CLASSES);
    if (kpu_load_kmodel(&g_task, vgg_edge_kmodel) != 0)
    {
        printf("{\"error\": \"kpu_load_kmodel failed: not a kmodel this nncase 1.9 runtime can load\"}\n");
        while (1)
            ;
    }
#if VGG_EDGE_HAS_LCD
    /* After the runtime's allocations: the LCD's first transfer sets up the SDK's iomem pool above the heap
     * malloc has used by then (compat/picolibc_glue.c). */
    lcd_init();
#endif
    self_test();
#if VGG_EDGE_HAS_CAMERA
    camera_loop();
#else
    printf("{\"camera\": \"no camera pin table for board %s: self-test only\"}\n", VGG_EDGE_BOARD_NAME);
    while (1)
        ;
#endif
    return 0;
}
