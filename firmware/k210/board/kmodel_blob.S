/* Ours (vgg-edge): OUT's kmodel in the image's read-only data, 128-byte aligned (the KPU reads its weights
 * and the nncase 1.9 k210 module's rdata by DMA from the buffer kpu_load_kmodel gets). */
    .section .rodata.vgg_edge_kmodel, "a"
    .balign 128
    .global vgg_edge_kmodel
vgg_edge_kmodel:
    .incbin KMODEL_PATH
    .global vgg_edge_kmodel_end
vgg_edge_kmodel_end:
    .balign 8
