/*
 * vgg-edge on a K210: camera frame -> model_k210.kmodel (nncase 1.9, kmodel V5) -> label over UART.
 *
 * For the Kendryte standalone SDK, develop branch (https://github.com/kendryte/kendryte-standalone-sdk):
 * its kpu_load_kmodel() hands kmodels of version 5 to the nncase v1 runtime (lib/nncase/nncase.cpp ->
 * nncase_v1_load_kmodel), which must come from the same nncase release as the compiler, 1.9.0.20230322.
 * Put this folder under the SDK's src/ as src/vgg_edge/, copy model_k210.kmodel and k210_labels.h (both
 * written by `make kmodel`) beside this file, and build:
 *   mkdir build && cd build && cmake .. -DPROJ=vgg_edge -DTOOLCHAIN=/opt/kendryte-toolchain/bin && make
 *   kflash -p /dev/ttyUSB0 -b 1500000 -B dan vgg_edge.bin      (-B: your board, see firmware_notes/k210.md)
 *
 * The camera code is the OV2640 + DVP set-up of Kendryte's demos (kendryte-standalone-demo, dvp_ov and
 * face_detect: ov2640.c / ov2640.h, and incbin.h); copy those files here. NOT COMPILED OR RUN in this repository:
 * no K210 toolchain, SDK or board was available where it was written (see firmware_notes/k210.md).
 */
#include <stdio.h>
#include <string.h>
#include <bsp.h>
#include <dvp.h>
#include <fpioa.h>
#include <kpu.h>
#include <plic.h>
#include <sysctl.h>
#include <uarths.h>
#include "incbin.h"
#include "ov2640.h"
#include "k210_labels.h" /* K210_LABELS, K210_NUM_CLASSES, K210_INPUT_W, K210_INPUT_H from `make kmodel` */

#define CAMERA_W 320
#define CAMERA_H 240

INCBIN(model, "model_k210.kmodel");

/* The DVP writes planar R, G, B planes (CAMERA_W x CAMERA_H each) into this buffer: the AI output. */
static uint8_t g_ai_buf[CAMERA_W * CAMERA_H * 3] __attribute__((aligned(128)));
/* The kmodel's input: planar uint8 R, G, B (NCHW), K210_INPUT_W x K210_INPUT_H, values 0..255. */
static uint8_t g_model_in[K210_INPUT_W * K210_INPUT_H * 3] __attribute__((aligned(128)));
static uint32_t g_display_buf[CAMERA_W * CAMERA_H / 2] __attribute__((aligned(64)));

static kpu_model_context_t g_task;
static volatile int g_frame_done;
static volatile int g_ai_done;

static int on_dvp_irq(void *ctx)
{
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

static int on_ai_done(void *ctx)
{
    g_ai_done = 1;
    return 0;
}

/* Squash-resize each plane to the model's size (nearest pixel), as `make convert` resized ("squash"). */
static void resize_planes(const uint8_t *src, uint8_t *dst)
{
    for (int c = 0; c < 3; c++)
    {
        const uint8_t *plane = src + c * CAMERA_W * CAMERA_H;
        uint8_t *out = dst + c * K210_INPUT_W * K210_INPUT_H;
        for (int y = 0; y < K210_INPUT_H; y++)
        {
            const uint8_t *row = plane + (y * CAMERA_H / K210_INPUT_H) * CAMERA_W;
            for (int x = 0; x < K210_INPUT_W; x++)
                out[y * K210_INPUT_W + x] = row[x * CAMERA_W / K210_INPUT_W];
        }
    }
}

static void camera_init(void)
{
    /* DVP pins of a Sipeed Maix board; check your board's schematic. */
    fpioa_set_function(47, FUNC_CMOS_PCLK);
    fpioa_set_function(46, FUNC_CMOS_XCLK);
    fpioa_set_function(45, FUNC_CMOS_HREF);
    fpioa_set_function(44, FUNC_CMOS_PWDN);
    fpioa_set_function(43, FUNC_CMOS_VSYNC);
    fpioa_set_function(42, FUNC_CMOS_RST);
    fpioa_set_function(41, FUNC_SCCB_SCLK);
    fpioa_set_function(40, FUNC_SCCB_SDA);
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

int main(void)
{
    sysctl_pll_set_freq(SYSCTL_PLL0, 800000000UL);
    sysctl_pll_set_freq(SYSCTL_PLL1, 400000000UL); /* the KPU clock */
    uarths_init();
    plic_init();
    sysctl_enable_irq();

    printf("vgg-edge: loading kmodel (%u bytes)\n", (unsigned)model_size);
    if (kpu_load_kmodel(&g_task, (const uint8_t *)model_data) != 0)
    {
        printf("vgg-edge: kpu_load_kmodel failed: not a kmodel this SDK's nncase runtime can load\n");
        while (1)
            ;
    }
    camera_init();

    while (1)
    {
        g_frame_done = 0;
        dvp_clear_interrupt(DVP_STS_FRAME_START | DVP_STS_FRAME_FINISH);
        dvp_config_interrupt(DVP_CFG_START_INT_ENABLE | DVP_CFG_FINISH_INT_ENABLE, 1);
        while (!g_frame_done)
            ;

        uint64_t started = sysctl_get_time_us();
        resize_planes(g_ai_buf, g_model_in);
        g_ai_done = 0;
        if (kpu_run_kmodel(&g_task, g_model_in, DMAC_CHANNEL5, on_ai_done, NULL) != 0)
        {
            printf("vgg-edge: kpu_run_kmodel failed\n");
            continue;
        }
        while (!g_ai_done)
            ;

        float *scores;
        size_t scores_bytes;
        kpu_get_output(&g_task, 0, (uint8_t **)&scores, &scores_bytes);
        int best = 0;
        for (int i = 1; i < K210_NUM_CLASSES; i++)
            if (scores[i] > scores[best])
                best = i;
        printf("{\"label\": \"%s\", \"score\": %.4f, \"latency_ms\": %.1f}\n", K210_LABELS[best], scores[best],
               (sysctl_get_time_us() - started) / 1000.0);
    }
    return 0;
}
