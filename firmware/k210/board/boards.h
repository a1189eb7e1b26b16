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
#elif defined(VGG_EDGE_BOARD_kd233) || defined(VGG_EDGE_BOARD_trainer)
/* Kendryte's KD233 and the trainer board: their camera pin tables are not among the sources this build has
 * (../shared/vendor/k210), so the program runs its self-test and no camera loop. */
#define VGG_EDGE_HAS_CAMERA 0
#define VGG_EDGE_LICHEEDAN 0
#else
#error "unknown BOARD: one of dan bit bit_mic maixduino kd233 goD goE trainer"
#endif

#endif
