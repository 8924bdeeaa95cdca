# tools/module.mk - helper programs.
TOOLS_ONNXB_SRCS := tools/onnxb.c
TOOLS_GENMODEL_SRCS := tools/genmodel.c tools/genutil.c $(TOOLS_ONNXB_SRCS)
TOOLS_GENGGUF_SRCS := tools/gengguf.c tools/genutil.c
