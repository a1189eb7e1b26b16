/*
 * Ours (vgg-edge): the board's 320x240 LCD, written against the standalone SDK's SPI, GPIOHS, FPIOA and
 * DMA drivers. Not checked on a board (none was here): it compiles against the real SDK headers and follows
 * the hardware facts of the boards' schematics and of Kendryte's and Sipeed's LCD demos (read, not copied):
 * SPI0 in octal mode with the data/command line on a GPIOHS pin, MIPI DCS commands, and a 32-bit frame per
 * two RGB565 pixels, in the layout the DVP writes its display output in.
 *
 * Memory: the SDK's DMA driver copies any buffer it is given at a cached address into an "iomem" block first
 * (FIX_CACHE); a frame is sent from its uncached alias instead (no 150 KB copy a frame), and the text is drawn
 * through that alias too, so the DMA reads what the CPU wrote.
 */
#include "lcd.h"
#include <dmac.h>
#include <fpioa.h>
#include <gpiohs.h>
#include <sleep.h>
#include <spi.h>
#include <stddef.h>
#include <sysctl.h>
#include "boards.h"
#include "vgg_edge_font.h" /* VGG_EDGE_FONT_W, VGG_EDGE_FONT_H, VGG_EDGE_FONT: written by `make firmware` */

#if VGG_EDGE_HAS_LCD

#define UNCACHED(address) ((uintptr_t)(address) - 0x40000000UL) /* the SRAM's uncached alias (kpu.h's IOMEM) */
#define LCD_SPI SPI_DEVICE_0
#define LCD_CHIP_SELECT SPI_CHIP_SELECT_3
/* nncase 1.9's k210 module uses DMA channel 0 whatever it is given (main.c): the LCD takes channel 1. */
#define LCD_DMA DMAC_CHANNEL1
#define LCD_GPIOHS_DC 2
#define LCD_GPIOHS_RST 3
#define LCD_SPI_HZ 20000000UL

/* MIPI DCS commands (ST7789 and NT35310 both take them) */
#define DCS_SOFT_RESET 0x01
#define DCS_EXIT_SLEEP_MODE 0x11
#define DCS_SET_DISPLAY_ON 0x29
#define DCS_SET_COLUMN_ADDRESS 0x2A
#define DCS_SET_PAGE_ADDRESS 0x2B
#define DCS_WRITE_MEMORY_START 0x2C
#define DCS_SET_ADDRESS_MODE 0x36
#define DCS_SET_PIXEL_FORMAT 0x3A
#define PIXEL_FORMAT_RGB565 0x55
/* Address mode: rows and columns exchanged and both mirrored, the panel's 240x320 seen as 320 wide (the
 * 320x240 setting of Sipeed's ST7789 driver). Mirrored on another panel: change this byte. */
#define ADDRESS_MODE_LANDSCAPE 0xE0

/* The bus for the next transfer: 8-bit frames (commands, their parameters) as octal SPI's instruction
 * phase, 32-bit ones (pixels) as its address phase; the data/command line low for a command. */
static void lcd_bus(int data, int bits)
{
    gpiohs_set_pin(LCD_GPIOHS_DC, data ? GPIO_PV_HIGH : GPIO_PV_LOW);
    spi_init(LCD_SPI, SPI_WORK_MODE_0, SPI_FF_OCTAL, bits, 0);
    spi_init_non_standard(LCD_SPI, bits == 32 ? 0 : bits, bits == 32 ? 32 : 0, 0, SPI_AITM_AS_FRAME_FORMAT);
}

static void lcd_command(uint8_t command, const uint8_t *parameters, size_t count)
{
    lcd_bus(0, 8);
    spi_send_data_normal_dma(LCD_DMA, LCD_SPI, LCD_CHIP_SELECT, &command, 1, SPI_TRANS_CHAR);
    if (count)
    {
        lcd_bus(1, 8);
        spi_send_data_normal_dma(LCD_DMA, LCD_SPI, LCD_CHIP_SELECT, parameters, count, SPI_TRANS_CHAR);
    }
}

void lcd_init(void)
{
    fpioa_set_function(VGG_EDGE_PIN_LCD_CS, FUNC_SPI0_SS3);
    fpioa_set_function(VGG_EDGE_PIN_LCD_WR, FUNC_SPI0_SCLK);
    fpioa_set_function(VGG_EDGE_PIN_LCD_DC, FUNC_GPIOHS0 + LCD_GPIOHS_DC);
    sysctl_set_spi0_dvp_data(1); /* the LCD's 8 data lines are the DVP's */
    gpiohs_set_drive_mode(LCD_GPIOHS_DC, GPIO_DM_OUTPUT);
    gpiohs_set_pin(LCD_GPIOHS_DC, GPIO_PV_HIGH);
    if (VGG_EDGE_PIN_LCD_RST >= 0)
    {
        fpioa_set_function(VGG_EDGE_PIN_LCD_RST, FUNC_GPIOHS0 + LCD_GPIOHS_RST);
        gpiohs_set_drive_mode(LCD_GPIOHS_RST, GPIO_DM_OUTPUT);
        gpiohs_set_pin(LCD_GPIOHS_RST, GPIO_PV_LOW);
        msleep(10);
        gpiohs_set_pin(LCD_GPIOHS_RST, GPIO_PV_HIGH);
        msleep(120);
    }
    spi_init(LCD_SPI, SPI_WORK_MODE_0, SPI_FF_OCTAL, 8, 0);
    spi_set_clk_rate(LCD_SPI, LCD_SPI_HZ);

    lcd_command(DCS_SOFT_RESET, NULL, 0);
    msleep(120); /* the controllers' reset time */
    lcd_command(DCS_EXIT_SLEEP_MODE, NULL, 0);
    msleep(120);
    const uint8_t format = PIXEL_FORMAT_RGB565, mode = ADDRESS_MODE_LANDSCAPE;
    lcd_command(DCS_SET_PIXEL_FORMAT, &format, 1);
    lcd_command(DCS_SET_ADDRESS_MODE, &mode, 1);
    lcd_command(DCS_SET_DISPLAY_ON, NULL, 0);
}

void lcd_draw_frame(const uint32_t *frame)
{
    const uint8_t columns[4] = {0, 0, (LCD_W - 1) >> 8, (LCD_W - 1) & 0xFF};
    const uint8_t pages[4] = {0, 0, (LCD_H - 1) >> 8, (LCD_H - 1) & 0xFF};
    lcd_command(DCS_SET_COLUMN_ADDRESS, columns, sizeof(columns));
    lcd_command(DCS_SET_PAGE_ADDRESS, pages, sizeof(pages));
    lcd_command(DCS_WRITE_MEMORY_START, NULL, 0);
    lcd_bus(1, 32);
    spi_send_data_normal_dma(LCD_DMA, LCD_SPI, LCD_CHIP_SELECT, (const void *)UNCACHED(frame), LCD_W * LCD_H / 2,
                             SPI_TRANS_INT);
}

/* Pixel (x, y) of a frame in the display layout: two pixels a 32-bit word, the left one in the high half. */
static void put_pixel(uint32_t *frame, int x, int y, uint16_t colour)
{
    if (x < 0 || y < 0 || x >= LCD_W || y >= LCD_H)
        return;
    volatile uint16_t *pixels = (volatile uint16_t *)UNCACHED(frame);
    pixels[y * LCD_W + (x ^ 1)] = colour;
}

void lcd_fill(uint32_t *frame, int x, int y, int w, int h, uint16_t colour)
{
    for (int row = y; row < y + h; row++)
        for (int column = x; column < x + w; column++)
            put_pixel(frame, column, row, colour);
}

int lcd_text(uint32_t *frame, int x, int y, const char *text, int scale, uint16_t colour, uint16_t background)
{
    for (; *text; text++, x += VGG_EDGE_FONT_W * scale)
    {
        unsigned char c = (unsigned char)*text;
        const uint16_t *glyph = VGG_EDGE_FONT[(c < 32 || c > 126 ? '?' : c) - 32];
        for (int row = 0; row < VGG_EDGE_FONT_H; row++)
            for (int column = 0; column < VGG_EDGE_FONT_W; column++)
            {
                int on = (glyph[row] >> (VGG_EDGE_FONT_W - 1 - column)) & 1;
                lcd_fill(frame, x + column * scale, y + row * scale, scale, scale, on ? colour : background);
            }
    }
    return x;
}

#endif /* VGG_EDGE_HAS_LCD */
