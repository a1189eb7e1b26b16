/* Ours (vgg-edge): what the board program needs to know of each board kflash can flash (its -B names).
 * VGG_EDGE_BOARD_<name> is set by firmware/k210/CMakeLists.txt from BOARD=. */
#ifndef VGG_EDGE_BOARDS_H
#define VGG_EDGE_BOARDS_H

#if defined(VGG_EDGE_BOARD_dan) || defined(VGG_EDGE_BOARD_bit) || defined(VGG_EDGE_BOARD_bit_mic) || \
    defined(VGG_EDGE_BOARD_maixduino) || defined(VGG_EDGE_BOARD_goD) || defined(VGG_EDGE_BOARD_goE)
/* Sipeed Maix boards: OV2640 on the DVP with these FPIOA pins (the Maix Dock/Bit schematics; the same
 * mapping as Sipeed's MaixPy board configs), mounted the "Lichee Dan" way round (ov2640.c's register 0x04). */
#define VGG_EDGE_HAS_CAMERA 1
#define VGG_EDGE_LICHEEDAN 1
#define VGG_EDGE_PIN_CMOS_PCLK 47
#define VGG_EDGE_PIN_CMOS_XCLK 46
#define VGG_EDGE_PIN_CMOS_HREF 45
#define VGG_EDGE_PIN_CMOS_PWDN 44
#define VGG_EDGE_PIN_CMOS_VSYNC 43
#define VGG_EDGE_PIN_CMOS_RST 42
#define VGG_EDGE_PIN_SCCB_SCLK 41
#define VGG_EDGE_PIN_SCCB_SDA 40
/* Their 320x240 ST7789 LCD on SPI0 in octal mode (its data lines are the DVP's, sysctl_set_spi0_dvp_data):
 * chip select SPI0_SS3 on IO 36, reset IO 37 and data/command IO 38 as GPIOHS, write clock SPI0_SCLK on IO 39;
 * IO banks 6 and 7 (IO 36-47: the LCD and the camera) at 1.8 V (the Maix schematics; as Sipeed's board configs). */
#define VGG_EDGE_HAS_LCD 1
#define VGG_EDGE_PIN_LCD_CS 36
#define VGG_EDGE_PIN_LCD_RST 37
#define VGG_EDGE_PIN_LCD_DC 38
#define VGG_EDGE_PIN_LCD_WR 39
#define VGG_EDGE_IO_BANKS_1V8 {SYSCTL_POWER_BANK6, SYSCTL_POWER_BANK7}
#elif defined(VGG_EDGE_BOARD_kd233)
/* Kendryte's KD233: its camera pin table is not among the sources this build has (../shared/vendor/k210), so
 * the program runs its self-test and no camera loop. Its 320x240 LCD (NT35310, the same MIPI DCS commands):
 * SPI0_SS3 on IO 6, SPI0_SCLK on IO 7, data/command IO 8, no reset line, IO bank 1 at 1.8 V (the pins of
 * Kendryte's standalone demo `lcd`). */
#define VGG_EDGE_HAS_CAMERA 0
#define VGG_EDGE_LICHEEDAN 0
#define VGG_EDGE_HAS_LCD 1
#define VGG_EDGE_PIN_LCD_CS 6
#define VGG_EDGE_PIN_LCD_RST (-1)
#define VGG_EDGE_PIN_LCD_DC 8
#define VGG_EDGE_PIN_LCD_WR 7
#define VGG_EDGE_IO_BANKS_1V8 {SYSCTL_POWER_BANK1}
#elif defined(VGG_EDGE_BOARD_trainer)
/* The trainer board: neither its camera nor its LCD pins are among the sources this build has: self-test
 * and UART only. */
#define VGG_EDGE_HAS_CAMERA 0
#define VGG_EDGE_LICHEEDAN 0
#define VGG_EDGE_HAS_LCD 0
#else
#error "unknown BOARD: one of dan bit bit_mic maixduino kd233 goD goE trainer"
#endif

#endif
