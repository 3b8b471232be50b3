// y = x @ dequantize(output.weight).T + bias, with the Q6_K output head of
// tests/data/gguf/tiny-llama-q4_k_m.gguf.
func.func @linear(%x: tensor<?x256xf32>) -> tensor<?x32xf32> {
  %w = quant.weight "output.weight" #quant.encoding<q6_k> [32, 256] : tensor<32x210xui8>
  %b = quant.weight "bias" : tensor<32xf32>
  %y = quant.qmatmul #quant.encoding<q6_k> %x, %w : (tensor<?x256xf32>, tensor<32x210xui8>) -> tensor<?x32xf32>
  %z = qnn.add %y, %b : (tensor<?x32xf32>, tensor<32xf32>) -> tensor<?x32xf32>
  func.return %z : tensor<?x32xf32>
}
