// One case per error of the quant dialect's parser and verifier.
// Each case's `expected-error` annotation names the line and text of the
// error its chunk must produce (MLIR's --verify-diagnostics): a missing or an
// unexpected error fails the run.
// RUN: quantir-opt %s --split-input-file --verify-diagnostics
//
// Checks with no case here, because the op's declared constraints reject the
// input before they can run: packed operands and x "must be a tensor or
// memref" (verify_packed_operands, _check_f32), quant.qmatmul built without
// any operand (QMatmulOp._from_parsed; the parser needs one), and
// quant.dequantize's "the packed weight has N=... rows, the result N=..."
// (verify_packed_operands already compares both N). GPTQConfigAttr.verify is
// reached from Python only (the parser checks the same fields with a
// location): tests/api/test_dialect_api.py covers it.

// Parse errors point at the offending text.
// An unknown encoding name lists the known ones.
func.func @f() {
  // expected-error@+1 {{Expected `q4_0`, `q4_k`, `q5_k`, `q6_k`, `gptq`, `q8_0`, `q5_0`, `q4_1`, `q5_1`, `q2_k`, or `q3_k`.}}
  %w = quant.weight "w" #quant.encoding<q9_k> [8, 512] : tensor<8x288xui8>
  func.return
}

// -----

// Encoding names are lower-case in IR (as QuantizationEncoding.name).
func.func @f() {
  // expected-error@+1 {{Expected `q4_0`, `q4_k`, `q5_k`, `q6_k`, `gptq`, `q8_0`, `q5_0`, `q4_1`, `q5_1`, `q2_k`, or `q3_k`.}}
  %w = quant.weight "w" #quant.encoding<Q4_K> [8, 512] : tensor<8x288xui8>
  func.return
}

// -----

// #quant.gptq takes only its five fields.
func.func @f() {
  // expected-error@+1 {{unknown #quant.gptq field 'zero_point', expected one of bits, group_size, desc_act, sym, format}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true, zero_point = 1> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// A #quant.gptq field given twice.
func.func @f() {
  // expected-error@+1 {{#quant.gptq field 'bits' given twice}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, bits = 8, desc_act = false, sym = true> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// #quant.gptq needs bits, group_size, desc_act and sym (format defaults to gptq).
func.func @f() {
  // expected-error@+1 {{#quant.gptq is missing field(s): desc_act, sym}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// GPTQ bits must be 2, 3, 4 or 8.
func.func @f() {
  // expected-error@+1 {{#quant.gptq bits must be one of [2, 3, 4, 8], got 5}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 5, group_size = 64, desc_act = false, sym = true> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// group_size is -1 or positive: 0 is neither.
func.func @f() {
  // expected-error@+1 {{#quant.gptq group_size must be -1 or positive, got 0}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 0, desc_act = false, sym = true> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// group_size is -1 or positive: -2 is neither.
func.func @f() {
  // expected-error@+1 {{#quant.gptq group_size must be -1 or positive, got -2}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = -2, desc_act = false, sym = true> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// The zero-point format is gptq or gptq_v2.
func.func @f() {
  // expected-error@+1 {{#quant.gptq format must be one of gptq, gptq_v2, got awq}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true, format = awq> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// bits is an integer, not a boolean.
func.func @f() {
  // expected-error@+1 {{Expected integer literal}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = true, group_size = 64, desc_act = false, sym = true> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// desc_act is a boolean, not an integer.
func.func @f() {
  // expected-error@+1 {{Expected boolean literal}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = 1, sym = true> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// quant.weight names its encoding first.
func.func @f() {
  // expected-error@+1 {{expected a #quant.encoding attribute, got #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true, format = gptq>}}
  %w = quant.weight "w" #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> [8, 512] : tensor<8x288xui8>
  func.return
}

// -----

// The config of a weight is a #quant.gptq attribute.
func.func @f() {
  // expected-error@+1 {{expected a #quant.gptq attribute, got #quant.encoding<q4_0>}}
  %w = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.encoding<q4_0> : tensor<8x288xui8>
  func.return
}

// -----

// An encoded weight gives its logical [N, K] shape.
func.func @f() {
  // expected-error@+1 {{expected the logical shape [N, K] of the encoded weight after its encoding}}
  %w = quant.weight "w" #quant.encoding<q4_0> : tensor<8x288xui8>
  func.return
}

// -----

// quant.dequantize names its encoding first.
func.func @f(%w: tensor<8x288xui8>) {
  // expected-error@+1 {{expected a #quant.encoding attribute, got #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true, format = gptq>}}
  %d = quant.dequantize #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> %w : (tensor<8x288xui8>) -> tensor<8x512xf32>
  func.return
}

// -----

// The config of quant.qmatmul is a #quant.gptq attribute.
func.func @f(%x: tensor<2x512xf32>, %w: tensor<8x288xui8>) {
  // expected-error@+1 {{expected a #quant.gptq attribute, got #quant.encoding<q4_0>}}
  %y = quant.qmatmul #quant.encoding<gptq> config #quant.encoding<q4_0> %x, %w : (tensor<2x512xf32>, tensor<8x288xui8>) -> tensor<2x8xf32>
  func.return
}

// -----

// Every operand needs a type.
func.func @f(%x: tensor<2x512xf32>, %w: tensor<8x288xui8>) {
  // expected-error@+1 {{2 operands but 1 operand types}}
  %y = quant.qmatmul #quant.encoding<q4_0> %x, %w : (tensor<8x288xui8>) -> tensor<2x8xf32>
  func.return
}

// -----

// The value form has one result.
func.func @f(%w: tensor<8x288xui8>) {
  // expected-error@+1 {{expected at most one result type}}
  %d = quant.dequantize #quant.encoding<q4_0> %w : (tensor<8x288xui8>) -> (tensor<8x512xf32>, tensor<8x512xf32>)
  func.return
}

// -----

// Verifier errors. GPTQ weights need their config to have a layout.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": GPTQ needs a #quant.gptq config (bits, group_size, desc_act, sym)}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// So do GPTQ consumers.
func.func @f(%x: tensor<2x256xf32>, %qw: tensor<32x64xi32>, %qz: tensor<4x8xi32>, %s: tensor<4x64xf16>, %g: tensor<256xi32>) {
  // expected-error@+1 {{quant.qmatmul (gptq): GPTQ needs a #quant.gptq config (bits, group_size, desc_act, sym)}}
  %y = quant.qmatmul #quant.encoding<gptq> %x, %qw, %qz, %s, %g : (tensor<2x256xf32>, tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<2x64xf32>
  func.return
}

// -----

// A config on a GGUF encoding is an error, not ignored.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": #quant.gptq config given for q4_k, GPTQ only}}
  %w = quant.weight "w" #quant.encoding<q4_k> [8, 512] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> : tensor<8x288xui8>
  func.return
}

// -----

// Also on consumers.
func.func @f(%w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.dequantize (q4_0): #quant.gptq config given for q4_0, GPTQ only}}
  %d = quant.dequantize #quant.encoding<q4_0> config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> %w : (tensor<8x288xui8>) -> tensor<8x512xf32>
  func.return
}

// -----

// A GGUF weight is one tensor of bytes.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": q4_0 takes 1 packed operand(s) (packed bytes), got 2}}
  %a, %b = quant.weight "w" #quant.encoding<q4_0> [8, 512] : tensor<8x288xui8>, tensor<8x288xui8>
  func.return
}

// -----

// A GPTQ consumer takes all four tensors.
func.func @f(%x: tensor<2x256xf32>, %qw: tensor<32x64xi32>, %qz: tensor<4x8xi32>, %s: tensor<4x64xf16>) {
  // expected-error@+1 {{quant.qmatmul (gptq): gptq takes 4 packed operand(s) (qweight, qzeros, scales, g_idx), got 3}}
  %y = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> %x, %qw, %qz, %s : (tensor<2x256xf32>, tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>) -> tensor<2x64xf32>
  func.return
}

// -----

// quant.qmatmul without its weight.
func.func @f(%x: tensor<2x256xf32>) {
  // expected-error@+1 {{quant.qmatmul (q4_0): q4_0 takes 1 packed operand(s) (packed bytes), got 0}}
  %y = quant.qmatmul #quant.encoding<q4_0> %x : (tensor<2x256xf32>) -> tensor<2x64xf32>
  func.return
}

// -----

// K must be static: it fixes the packed row size.
func.func @f(%w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.dequantize (q4_0): K (the reduction dimension) must be static}}
  %d = quant.dequantize #quant.encoding<q4_0> %w : (tensor<8x288xui8>) -> tensor<8x?xf32>
  func.return
}

// -----

// GGUF packed bytes are 8-bit.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": q4_0 packed bytes must have element type ui8 (or i8), got i16}}
  %w = quant.weight "w" #quant.encoding<q4_0> [8, 512] : tensor<8x288xi16>
  func.return
}

// -----

// ... unsigned or signless: si8 is rejected.
func.func @f(%w: tensor<8x288xsi8>) {
  // expected-error@+1 {{quant.dequantize (q4_0): q4_0 packed bytes must have element type ui8 (or i8), got si8}}
  %d = quant.dequantize #quant.encoding<q4_0> %w : (tensor<8x288xsi8>) -> tensor<8x512xf32>
  func.return
}

// -----

// K not a multiple of elements_per_block (a weight).
func.func @f() {
  // expected-error@+1 {{quant.weight "w": q4_k packs K in blocks of 256 weights, K=500 is not a multiple of 256}}
  %w = quant.weight "w" #quant.encoding<q4_k> [8, 500] : tensor<8x288xui8>
  func.return
}

// -----

// K not a multiple of elements_per_block (the K of x; the weight's rows are
// dynamic, so x alone gives K).
func.func @f(%x: tensor<2x100xf32>, %w: tensor<8x?xui8>) {
  // expected-error@+1 {{quant.qmatmul (q4_0): q4_0 packs K in blocks of 32 weights, K=100 is not a multiple of 32}}
  %y = quant.qmatmul #quant.encoding<q4_0> %x, %w : (tensor<2x100xf32>, tensor<8x?xui8>) -> tensor<2x8xf32>
  func.return
}

// -----

// Byte shape vs logical shape vs encoding: q6_k rows of 512 are 420 bytes, not 288 (q4_k's).
func.func @f() {
  // expected-error@+1 {{quant.weight "w": q6_k packed bytes for a 8x512 weight must be 8x420 (2 block(s) of 210 bytes per row), got 8x288}}
  %w = quant.weight "w" #quant.encoding<q6_k> [8, 512] : tensor<8x288xui8>
  func.return
}

// -----

// The packed bytes have N rows.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": q4_k packed bytes for a 8x512 weight must be 8x288 (2 block(s) of 144 bytes per row), got 9x288}}
  %w = quant.weight "w" #quant.encoding<q4_k> [8, 512] : tensor<9x288xui8>
  func.return
}

// -----

// The packed bytes are 2-D [N, row bytes], not flat.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": q4_k packed bytes for a 8x512 weight must be 8x288 (2 block(s) of 144 bytes per row), got 2304}}
  %w = quant.weight "w" #quant.encoding<q4_k> [8, 512] : tensor<2304xui8>
  func.return
}

// -----

// The N of the result and of the packed bytes must agree.
func.func @f(%w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.dequantize (q4_0): q4_0 packed bytes for a 16x512 weight must be 16x288 (16 block(s) of 18 bytes per row), got 8x288}}
  %d = quant.dequantize #quant.encoding<q4_0> %w : (tensor<8x288xui8>) -> tensor<16x512xf32>
  func.return
}

// -----

// The K of the result decides the row size of the packed bytes.
func.func @f(%w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.dequantize (q4_0): q4_0 packed bytes for a 8x256 weight must be 8x144 (8 block(s) of 18 bytes per row), got 8x288}}
  %d = quant.dequantize #quant.encoding<q4_0> %w : (tensor<8x288xui8>) -> tensor<8x256xf32>
  func.return
}

// -----

// An x whose K differs from the packed weight's is blamed on x, not on the
// weight's packed size.
func.func @f(%x: tensor<2x256xf32>, %w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.qmatmul (q4_k): x must be [..., K=512] for the packed weight (q4_k rows of 288 bytes), got x of shape 2x256}}
  %y = quant.qmatmul #quant.encoding<q4_k> %x, %w : (tensor<2x256xf32>, tensor<8x288xui8>) -> tensor<2x8xf32>
  func.return
}

// -----

// The same for GPTQ: K from g_idx.
func.func @f(%x: tensor<2x128xf32>) {
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true, format = gptq> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  // expected-error@+1 {{quant.qmatmul (gptq): x must be [..., K=256] for the packed weight (g_idx has 256 entries), got x of shape 2x128}}
  %y = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true, format = gptq> %x, %q#0, %q#1, %q#2, %q#3 : (tensor<2x128xf32>, tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<2x64xf32>
  func.return
}

// -----

// GPTQ: K * bits must fill whole 32-bit words of qweight.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": GPTQ 3-bit packs K into 32-bit words, K=48 times 3 is not a multiple of 32}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [32, 48] config #quant.gptq<bits = 3, group_size = -1, desc_act = false, sym = true> : tensor<4x32xi32>, tensor<1x3xi32>, tensor<1x32xf16>, tensor<48xi32>
  func.return
}

// -----

// GPTQ: group_size must divide K.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": GPTQ group_size 96 does not divide K=256}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 96, desc_act = false, sym = true> : tensor<32x64xi32>, tensor<3x8xi32>, tensor<3x64xf16>, tensor<256xi32>
  func.return
}

// -----

// GPTQ: N * bits must fill whole 32-bit words of qzeros.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": GPTQ 3-bit packs zero points along N into 32-bit words, N=16 times 3 is not a multiple of 32}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [16, 256] config #quant.gptq<bits = 3, group_size = 64, desc_act = false, sym = true> : tensor<24x16xi32>, tensor<4x1xi32>, tensor<4x16xf16>, tensor<256xi32>
  func.return
}

// -----

// GPTQ element types: qweight is signless i32.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": GPTQ qweight must have element type i32}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> : tensor<32x64xf32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// Not si32: the lowering's integer arithmetic takes signless integers only.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": GPTQ qweight must have element type i32, got si32}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> : tensor<32x64xsi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// qzeros is signless i32, not ui32.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": GPTQ qzeros must have element type i32}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> : tensor<32x64xi32>, tensor<4x8xui32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// scales is f16.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": GPTQ scales must have element type f16, got f32}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf32>, tensor<256xi32>
  func.return
}

// -----

// g_idx is i32.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": GPTQ g_idx must have element type i32}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi64>
  func.return
}

// -----

// GPTQ shapes: qweight is [K * bits / 32, N] (packed along K, not N).
func.func @f() {
  // expected-error@+1 {{quant.weight "w": GPTQ qweight for a 64x256 weight with bits=4, group_size=64 must be 32x64, got 256x8}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> : tensor<256x8xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// qzeros is [groups, N * bits / 32] (packed along N).
func.func @f() {
  // expected-error@+1 {{quant.weight "w": GPTQ qzeros for a 64x256 weight with bits=4, group_size=64 must be 4x8, got 4x64}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> : tensor<32x64xi32>, tensor<4x64xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// scales is [groups, N]; group_size -1 means one group.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": GPTQ scales for a 64x256 weight with bits=4, group_size=-1 must be 1x64, got 4x64}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = -1, desc_act = false, sym = true> : tensor<32x64xi32>, tensor<1x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  func.return
}

// -----

// g_idx is [K].
func.func @f() {
  // expected-error@+1 {{quant.weight "w": GPTQ g_idx for a 64x256 weight with bits=4, group_size=64 must be 256, got 4x64}}
  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<4x64xi32>
  func.return
}

// -----

// With a dynamic N in the result, the four tensors are still checked
// against one another: N comes from qweight.
func.func @f(%qw: tensor<32x64xi32>, %qz: tensor<4x99xi32>, %s: tensor<4x64xf16>, %g: tensor<256xi32>) {
  // expected-error@+1 {{quant.dequantize (gptq): GPTQ qzeros for a 64x256 weight with bits=4, group_size=64 must be 4x8, got 4x99}}
  %d = quant.dequantize #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> %qw, %qz, %s, %g : (tensor<32x64xi32>, tensor<4x99xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<?x256xf32>
  func.return
}

// -----

// ... and scales must agree with qweight's N.
func.func @f(%qw: tensor<32x64xi32>, %qz: tensor<4x8xi32>, %s: tensor<4x128xf16>, %g: tensor<256xi32>) {
  // expected-error@+1 {{quant.dequantize (gptq): GPTQ scales for a 64x256 weight with bits=4, group_size=64 must be 4x64, got 4x128}}
  %d = quant.dequantize #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> %qw, %qz, %s, %g : (tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x128xf16>, tensor<256xi32>) -> tensor<?x256xf32>
  func.return
}

// -----

// With a dynamic N in qweight, N comes from scales.
func.func @f(%x: memref<?x256xf32>, %qw: memref<32x?xi32>, %qz: memref<4x99xi32>, %s: memref<4x64xf16>, %g: memref<256xi32>, %y: memref<?x?xf32>) {
  // expected-error@+1 {{quant.qmatmul (gptq): GPTQ qzeros for a 64x256 weight with bits=4, group_size=64 must be 4x8, got 4x99}}
  quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> %x, %qw, %qz, %s, %g outs(%y) : (memref<?x256xf32>, memref<32x?xi32>, memref<4x99xi32>, memref<4x64xf16>, memref<256xi32>, memref<?x?xf32>) -> ()
  func.return
}

// -----

// x is f32.
func.func @f(%x: tensor<2x512xf16>, %w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.qmatmul (q4_0): x must have element type f32, got f16}}
  %y = quant.qmatmul #quant.encoding<q4_0> %x, %w : (tensor<2x512xf16>, tensor<8x288xui8>) -> tensor<2x8xf32>
  func.return
}

// -----

// The dequantized weight is f32.
func.func @f(%w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.dequantize (q4_0): result must have element type f32, got f16}}
  %d = quant.dequantize #quant.encoding<q4_0> %w : (tensor<8x288xui8>) -> tensor<8x512xf16>
  func.return
}

// -----

// Tensor vs memref forms: an op has a result or an outs() buffer, not both.
func.func @f(%w: memref<8x288xui8>, %o: memref<8x512xf32>) {
  // expected-error@+1 {{quant.dequantize (q4_0): has both a result and an outs() buffer}}
  %d = quant.dequantize #quant.encoding<q4_0> %w outs(%o) : (memref<8x288xui8>, memref<8x512xf32>) -> tensor<8x512xf32>
  func.return
}

// -----

// The outs() form works on memrefs only.
func.func @f(%x: tensor<2x512xf32>, %w: tensor<8x288xui8>, %o: memref<2x8xf32>) {
  // expected-error@+1 {{quant.qmatmul (q4_0): the outs() form works on memrefs: every operand must be a memref}}
  quant.qmatmul #quant.encoding<q4_0> %x, %w outs(%o) : (tensor<2x512xf32>, tensor<8x288xui8>, memref<2x8xf32>) -> ()
  func.return
}

// -----

// The outs() buffer is a memref (an operand constraint of the op).
func.func @f(%w: memref<8x288xui8>, %o: tensor<8x512xf32>) {
  // expected-error@+1 {{tensor<8x512xf32> should be of base attribute memref}}
  quant.dequantize #quant.encoding<q4_0> %w outs(%o) : (memref<8x288xui8>, tensor<8x512xf32>) -> ()
  func.return
}

// -----

// An op with neither a result nor an outs() buffer.
func.func @f(%w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.dequantize (q4_0): needs a tensor result or an outs() memref}}
  quant.dequantize #quant.encoding<q4_0> %w : (tensor<8x288xui8>) -> ()
  func.return
}

// -----

// The value form works on tensors only.
func.func @f(%x: memref<2x512xf32>, %w: memref<8x288xui8>) {
  // expected-error@+1 {{quant.qmatmul (q4_0): the value form works on tensors: every operand and the result must be tensors (use outs() on memrefs)}}
  %y = quant.qmatmul #quant.encoding<q4_0> %x, %w : (memref<2x512xf32>, memref<8x288xui8>) -> tensor<2x8xf32>
  func.return
}

// -----

// ... every operand: no mixing of tensors and memrefs.
func.func @f(%x: tensor<2x512xf32>, %w: memref<8x288xui8>) {
  // expected-error@+1 {{quant.qmatmul (q4_0): the value form works on tensors: every operand and the result must be tensors (use outs() on memrefs)}}
  %y = quant.qmatmul #quant.encoding<q4_0> %x, %w : (tensor<2x512xf32>, memref<8x288xui8>) -> tensor<2x8xf32>
  func.return
}

// -----

// quant.weight: weight names are not empty.
func.func @f() {
  // expected-error@+1 {{quant.weight: the weight name must not be empty}}
  %w = quant.weight "" #quant.encoding<q4_0> [8, 512] : tensor<8x288xui8>
  func.return
}

// -----

// A logical shape without an encoding (only the generic form can say this).
func.func @f() {
  // expected-error@+1 {{quant.weight "b": a logical shape or config needs an encoding (float weights give only their type)}}
  %w = "quant.weight"() <{weight_name = "b", shape = array<i64: 4, 4>}> : () -> tensor<4x4xf32>
  func.return
}

// -----

// A config without an encoding.
func.func @f() {
  // expected-error@+1 {{quant.weight "b": a logical shape or config needs an encoding (float weights give only their type)}}
  %w = "quant.weight"() <{weight_name = "b", config = #quant.gptq<bits = 4, group_size = -1, desc_act = false, sym = true>}> : () -> tensor<4x4xf32>
  func.return
}

// -----

// A float weight is one tensor.
func.func @f() {
  // expected-error@+1 {{quant.weight "b": a float weight has exactly one result}}
  %a, %b = quant.weight "b" : tensor<4xf32>, tensor<4xf32>
  func.return
}

// -----

// ... and not zero tensors.
func.func @f() {
  // expected-error@+1 {{quant.weight "b": a float weight has exactly one result}}
  "quant.weight"() <{weight_name = "b"}> : () -> ()
  func.return
}

// -----

// Weights have static shapes.
func.func @f() {
  // expected-error@+1 {{quant.weight "b": weight shapes must be static, got tensor<?xf32>}}
  %b = quant.weight "b" : tensor<?xf32>
  func.return
}

// -----

// Weights are tensors (bufferization turns them into arguments).
func.func @f() {
  // expected-error@+1 {{result 'results_' at position 0 does not verify:}}
  %b = quant.weight "b" : memref<4xf32>
  func.return
}

// -----

// An encoding without a logical shape (generic form).
func.func @f() {
  // expected-error@+1 {{quant.weight "w": an encoded weight needs its logical [N, K] shape}}
  %w = "quant.weight"() <{weight_name = "w", encoding = #quant.encoding<q4_0>}> : () -> tensor<8x288xui8>
  func.return
}

// -----

// The logical shape of an encoded weight is 2-D ...
func.func @f() {
  // expected-error@+1 {{quant.weight "w": the logical shape of an encoded weight is [N, K] with positive sizes, got [2, 8, 512]}}
  %w = quant.weight "w" #quant.encoding<q4_0> [2, 8, 512] : tensor<8x288xui8>
  func.return
}

// -----

// ... with positive sizes ...
func.func @f() {
  // expected-error@+1 {{quant.weight "w": the logical shape of an encoded weight is [N, K] with positive sizes, got [0, 512]}}
  %w = quant.weight "w" #quant.encoding<q4_0> [0, 512] : tensor<0x288xui8>
  func.return
}

// -----

// ... not negative ones.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": the logical shape of an encoded weight is [N, K] with positive sizes, got [8, -512]}}
  %w = quant.weight "w" #quant.encoding<q4_0> [8, -512] : tensor<8x288xui8>
  func.return
}

// -----

// Encoded weights have static packed shapes too.
func.func @f() {
  // expected-error@+1 {{quant.weight "w": weight shapes must be static, got tensor<?x288xui8>}}
  %w = quant.weight "w" #quant.encoding<q4_0> [8, 512] : tensor<?x288xui8>
  func.return
}

// -----

// quant.dequantize produces the 2-D logical weight.
func.func @f(%w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.dequantize (q4_0): the result is the logical [N, K] weight, got rank 3}}
  %d = quant.dequantize #quant.encoding<q4_0> %w : (tensor<8x288xui8>) -> tensor<8x1x512xf32>
  func.return
}

// -----

// quant.qmatmul: x is [..., K], at least 1-D.
func.func @f(%x: tensor<f32>, %w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.qmatmul (q4_0): x must be [..., K], got a scalar}}
  %y = quant.qmatmul #quant.encoding<q4_0> %x, %w : (tensor<f32>, tensor<8x288xui8>) -> tensor<8xf32>
  func.return
}

// -----

// The K of x is static.
func.func @f(%x: tensor<2x?xf32>, %w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.qmatmul (q4_0): K (the last dimension of x) must be static}}
  %y = quant.qmatmul #quant.encoding<q4_0> %x, %w : (tensor<2x?xf32>, tensor<8x288xui8>) -> tensor<2x8xf32>
  func.return
}

// -----

// The result has the rank of x.
func.func @f(%x: tensor<2x3x512xf32>, %w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.qmatmul (q4_0): the result must have the rank of x (3), got 2}}
  %y = quant.qmatmul #quant.encoding<q4_0> %x, %w : (tensor<2x3x512xf32>, tensor<8x288xui8>) -> tensor<6x8xf32>
  func.return
}

// -----

// ... and its leading dimensions.
func.func @f(%x: tensor<2x3x512xf32>, %w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.qmatmul (q4_0): leading dimension 1 of x (3) and of the result (4) differ}}
  %y = quant.qmatmul #quant.encoding<q4_0> %x, %w : (tensor<2x3x512xf32>, tensor<8x288xui8>) -> tensor<2x4x8xf32>
  func.return
}

// -----

// The last dimension of the result is N.
func.func @f(%x: tensor<?x512xf32>, %w: tensor<8x288xui8>) {
  // expected-error@+1 {{quant.qmatmul (q4_0): the result's last dimension must be N=8 (rows of the packed weight), got 16}}
  %y = quant.qmatmul #quant.encoding<q4_0> %x, %w : (tensor<?x512xf32>, tensor<8x288xui8>) -> tensor<?x16xf32>
  func.return
}

// -----

// ... for GPTQ too (N is the column count of qweight and scales).
func.func @f(%x: tensor<2x256xf32>, %qw: tensor<32x64xi32>, %qz: tensor<4x8xi32>, %s: tensor<4x64xf16>, %g: tensor<256xi32>) {
  // expected-error@+1 {{quant.qmatmul (gptq): the result's last dimension must be N=64 (rows of the packed weight), got 32}}
  %y = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> %x, %qw, %qz, %s, %g : (tensor<2x256xf32>, tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<2x32xf32>
  func.return
}

// -----

// The encoding property is required (generic form).
func.func @f(%w: tensor<8x288xui8>) {
  // expected-error@+1 {{property 'encoding' expected in operation 'quant.dequantize'}}
  %d = "quant.dequantize"(%w) <{operandSegmentSizes = array<i32: 1, 0>}> : (tensor<8x288xui8>) -> tensor<8x512xf32>
  func.return
}

// -----

// quant.gather reads rows of GGUF tables only.
func.func @f(%qw: tensor<32x64xi32>, %ids: tensor<4xi32>) {
  // expected-error@+1 {{quant.gather (gptq): GPTQ tables are not supported: gather reads rows of GGUF block-quantized tables}}
  %e = quant.gather #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> %qw, %ids : (tensor<32x64xi32>, tensor<4xi32>) -> tensor<4x256xf32>
  func.return
}

// -----

// quant.gather takes the table and the indices, nothing else.
func.func @f(%t: tensor<8x18xui8>, %ids: tensor<4xi32>) {
  // expected-error@+1 {{quant.gather: expected two operands, the packed table and the indices, got 3}}
  %e = quant.gather #quant.encoding<q4_0> %t, %ids, %ids : (tensor<8x18xui8>, tensor<4xi32>, tensor<4xi32>) -> tensor<4x32xf32>
  func.return
}

// -----

// Indices are integers.
func.func @f(%t: tensor<8x18xui8>, %ids: tensor<4xf32>) {
  // expected-error@+1 {{quant.gather (q4_0): indices must have element type i32 or i64 (signless), got f32}}
  %e = quant.gather #quant.encoding<q4_0> %t, %ids : (tensor<8x18xui8>, tensor<4xf32>) -> tensor<4x32xf32>
  func.return
}

// -----

// Signless only: the lowering's index_cast takes signless integers.
func.func @f(%t: tensor<8x18xui8>, %ids: tensor<4xui32>) {
  // expected-error@+1 {{quant.gather (q4_0): indices must have element type i32 or i64 (signless), got ui32}}
  %e = quant.gather #quant.encoding<q4_0> %t, %ids : (tensor<8x18xui8>, tensor<4xui32>) -> tensor<4x32xf32>
  func.return
}

// -----

// Indices have rank 1 or more.
func.func @f(%t: tensor<8x18xui8>, %ids: tensor<i32>) {
  // expected-error@+1 {{quant.gather (q4_0): indices must have rank 1 or more, got a scalar}}
  %e = quant.gather #quant.encoding<q4_0> %t, %ids : (tensor<8x18xui8>, tensor<i32>) -> tensor<32xf32>
  func.return
}

// -----

// The result is [*indices.shape, K].
func.func @f(%t: tensor<8x18xui8>, %ids: tensor<2x4xi32>) {
  // expected-error@+1 {{quant.gather (q4_0): the result must be [*indices.shape, K] (rank 3), got rank 2}}
  %e = quant.gather #quant.encoding<q4_0> %t, %ids : (tensor<8x18xui8>, tensor<2x4xi32>) -> tensor<8x32xf32>
  func.return
}

// -----

func.func @f(%t: tensor<8x18xui8>, %ids: tensor<2x4xi32>) {
  // expected-error@+1 {{quant.gather (q4_0): dimension 1 of the indices (4) and of the result (5) differ}}
  %e = quant.gather #quant.encoding<q4_0> %t, %ids : (tensor<8x18xui8>, tensor<2x4xi32>) -> tensor<2x5x32xf32>
  func.return
}

// -----

func.func @f(%t: tensor<8x18xui8>, %ids: tensor<4xi32>) {
  // expected-error@+1 {{quant.gather (q4_0): K (the last dimension of the result) must be static}}
  %e = quant.gather #quant.encoding<q4_0> %t, %ids : (tensor<8x18xui8>, tensor<4xi32>) -> tensor<4x?xf32>
  func.return
}

// -----

// K must be what the table's rows hold.
func.func @f(%t: tensor<8x18xui8>, %ids: tensor<4xi32>) {
  // expected-error@+1 {{quant.gather (q4_0): the result must be [..., K=32] for the packed table (q4_0 rows of 18 bytes), got 4x64}}
  %e = quant.gather #quant.encoding<q4_0> %t, %ids : (tensor<8x18xui8>, tensor<4xi32>) -> tensor<4x64xf32>
  func.return
}

// -----

// The table is packed bytes.
func.func @f(%t: tensor<8x18xf32>, %ids: tensor<4xi32>) {
  // expected-error@+1 {{quant.gather (q4_0): q4_0 packed bytes must have element type ui8 (or i8), got f32}}
  %e = quant.gather #quant.encoding<q4_0> %t, %ids : (tensor<8x18xf32>, tensor<4xi32>) -> tensor<4x32xf32>
  func.return
}

// -----

// Rows that are not whole blocks.
func.func @f(%t: tensor<8x20xui8>, %ids: tensor<4xi32>) {
  // expected-error@+1 {{quant.gather (q4_0): q4_0 packed bytes for a 8x32 weight must be 8x18 (1 block(s) of 18 bytes per row), got 8x20}}
  %e = quant.gather #quant.encoding<q4_0> %t, %ids : (tensor<8x20xui8>, tensor<4xi32>) -> tensor<4x32xf32>
  func.return
}

// -----

// The result is f32.
func.func @f(%t: tensor<8x18xui8>, %ids: tensor<4xi32>) {
  // expected-error@+1 {{quant.gather (q4_0): result must have element type f32, got f16}}
  %e = quant.gather #quant.encoding<q4_0> %t, %ids : (tensor<8x18xui8>, tensor<4xi32>) -> tensor<4x32xf16>
  func.return
}

// -----

// Both forms apply: the outs() form works on memrefs only.
func.func @f(%t: tensor<8x18xui8>, %ids: memref<4xi32>, %e: memref<4x32xf32>) {
  // expected-error@+1 {{quant.gather (q4_0): the outs() form works on memrefs: every operand must be a memref}}
  quant.gather #quant.encoding<q4_0> %t, %ids outs(%e) : (tensor<8x18xui8>, memref<4xi32>, memref<4x32xf32>) -> ()
  func.return
}
