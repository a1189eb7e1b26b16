/* Ours (vgg-edge): replaces the demos' dvp_ov/board_config.h (OV5640 on a KD233) for ov2640.c. */
#ifndef _BOARD_CONFIG_
#define _BOARD_CONFIG_
#include "boards.h"
#define OV5640 0
#define OV2640 1
#define BOARD_KD233 (!VGG_EDGE_LICHEEDAN)
#define BOARD_LICHEEDAN VGG_EDGE_LICHEEDAN
#define BOARD_K61 0
#endif
