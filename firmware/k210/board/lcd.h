/* Ours (vgg-edge): the board's 320x240 LCD (ST7789 / NT35310, MIPI DCS commands) on SPI0 in octal mode, and
 * text drawn into an RGB565 frame in the DVP's display layout. Not checked on a board: none was here. */
#ifndef VGG_EDGE_LCD_H
#define VGG_EDGE_LCD_H
#include <stdint.h>

#define LCD_W 320
#define LCD_H 240

/* RGB565 colours */
#define LCD_BLACK 0x0000
#define LCD_WHITE 0xFFFF
#define LCD_GREEN 0x07E0
#define LCD_YELLOW 0xFFE0

/* Pins, reset, sleep out, 16-bit pixels, landscape, display on. */
void lcd_init(void);
/* A whole LCD_W x LCD_H frame: RGB565, two pixels a 32-bit word, the left one in the high half (the layout
 * the DVP writes its display output in). */
void lcd_draw_frame(const uint32_t *frame);
/* Text into such a frame at (x, y), each font pixel `scale` x `scale`, on a filled background; characters
 * outside ASCII 32-126 are drawn as '?'. Returns the x after the text. */
int lcd_text(uint32_t *frame, int x, int y, const char *text, int scale, uint16_t colour, uint16_t background);
/* A filled rectangle in such a frame. */
void lcd_fill(uint32_t *frame, int x, int y, int w, int h, uint16_t colour);

#endif
