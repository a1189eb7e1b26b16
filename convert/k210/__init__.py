"""The K210 target: plan a VGG variant that fits, distill it, compile it with nncase, check it in the simulator."""
