// Two gated feed-forward blocks and the output head of a tiny llama model,
// computed straight from the packed weights of tiny-llama-q4_k_m.gguf
// (llama.cpp's Q4_K_M mix: Q4_K, Q5_0, Q8_0 and Q6_K tensors).
//
// Each block is  x + down((x * norm) @ gate.T  *  (x * norm) @ up.T):
// the layout of llama's FFN without its SiLU and without RMS normalization
// (qnn has no nonlinear or reduction ops yet); `norm` is the block's learned
// gain vector. The head maps the 256 features to 32 logits.
func.func @tiny_mlp(%x: tensor<?x256xf32>) -> tensor<?x32xf32> {
  // Block 0: gate and up are Q4_K; down is Q5_0 (its rows of 288 weights are
  // not a multiple of 256, so llama.cpp fell back from Q4_K to Q5_0).
  %norm0 = quant.weight "blk.0.ffn_norm.weight" : tensor<256xf32>
  %gate0 = quant.weight "blk.0.ffn_gate.weight" #quant.encoding<q4_k> [288, 256] : tensor<288x144xui8>
  %up0 = quant.weight "blk.0.ffn_up.weight" #quant.encoding<q4_k> [288, 256] : tensor<288x144xui8>
  %down0 = quant.weight "blk.0.ffn_down.weight" #quant.encoding<q5_0> [256, 288] : tensor<256x198xui8>
  %xn0 = qnn.mul %x, %norm0 : (tensor<?x256xf32>, tensor<256xf32>) -> tensor<?x256xf32>
  %g0 = quant.qmatmul #quant.encoding<q4_k> %xn0, %gate0 : (tensor<?x256xf32>, tensor<288x144xui8>) -> tensor<?x288xf32>
  %u0 = quant.qmatmul #quant.encoding<q4_k> %xn0, %up0 : (tensor<?x256xf32>, tensor<288x144xui8>) -> tensor<?x288xf32>
  %h0 = qnn.mul %g0, %u0 : (tensor<?x288xf32>, tensor<?x288xf32>) -> tensor<?x288xf32>
  %d0 = quant.qmatmul #quant.encoding<q5_0> %h0, %down0 : (tensor<?x288xf32>, tensor<256x198xui8>) -> tensor<?x256xf32>
  %x1 = qnn.add %x, %d0 : (tensor<?x256xf32>, tensor<?x256xf32>) -> tensor<?x256xf32>

  // Block 1: gate and up are Q4_K; down is Q8_0 (the fallback from Q6_K).
  %norm1 = quant.weight "blk.1.ffn_norm.weight" : tensor<256xf32>
  %gate1 = quant.weight "blk.1.ffn_gate.weight" #quant.encoding<q4_k> [288, 256] : tensor<288x144xui8>
  %up1 = quant.weight "blk.1.ffn_up.weight" #quant.encoding<q4_k> [288, 256] : tensor<288x144xui8>
  %down1 = quant.weight "blk.1.ffn_down.weight" #quant.encoding<q8_0> [256, 288] : tensor<256x306xui8>
  %xn1 = qnn.mul %x1, %norm1 : (tensor<?x256xf32>, tensor<256xf32>) -> tensor<?x256xf32>
  %g1 = quant.qmatmul #quant.encoding<q4_k> %xn1, %gate1 : (tensor<?x256xf32>, tensor<288x144xui8>) -> tensor<?x288xf32>
  %u1 = quant.qmatmul #quant.encoding<q4_k> %xn1, %up1 : (tensor<?x256xf32>, tensor<288x144xui8>) -> tensor<?x288xf32>
  %h1 = qnn.mul %g1, %u1 : (tensor<?x288xf32>, tensor<?x288xf32>) -> tensor<?x288xf32>
  %d1 = quant.qmatmul #quant.encoding<q8_0> %h1, %down1 : (tensor<?x288xf32>, tensor<256x306xui8>) -> tensor<?x256xf32>
  %x2 = qnn.add %x1, %d1 : (tensor<?x256xf32>, tensor<?x256xf32>) -> tensor<?x256xf32>

  // Output head: Q6_K, 32 logits per row.
  %normo = quant.weight "output_norm.weight" : tensor<256xf32>
  %head = quant.weight "output.weight" #quant.encoding<q6_k> [32, 256] : tensor<32x210xui8>
  %xo = qnn.mul %x2, %normo : (tensor<?x256xf32>, tensor<256xf32>) -> tensor<?x256xf32>
  %logits = quant.qmatmul #quant.encoding<q6_k> %xo, %head : (tensor<?x256xf32>, tensor<32x210xui8>) -> tensor<?x32xf32>
  func.return %logits : tensor<?x32xf32>
}
