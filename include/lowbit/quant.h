// lowbit's public quantization API: the format registry, QTensor with quantize()/dequantize(), the
// per-token activation quantizer, the element codecs, and the torchao-named affine primitives
// (choose_qparams_affine, quantize_affine, dequantize_affine). Definitions: docs/formats.md.
#pragma once

#include "formats/affine.h"
#include "formats/format.h"
#include "formats/minifloat.h"
#include "formats/qtensor.h"
