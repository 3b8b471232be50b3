// A GPTQ linear layer (K=256, N=64, 4-bit, group 64) with its bias, and the
// dequantized weight as a second result.
func.func @gptq_linear(%x: tensor<?x256xf32>) -> (tensor<?x64xf32>, tensor<64x256xf32>) {
  %qw, %qz, %s, %g = quant.weight "model.layers.0.mlp.down_proj" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true, format = gptq> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  %b = quant.weight "model.layers.0.mlp.down_proj.bias" : tensor<64xf32>
  %y = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true, format = gptq> %x, %qw, %qz, %s, %g : (tensor<?x256xf32>, tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<?x64xf32>
  %z = qnn.add %y, %b : (tensor<?x64xf32>, tensor<64xf32>) -> tensor<?x64xf32>
  %w = quant.dequantize #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true, format = gptq> %qw, %qz, %s, %g : (tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<64x256xf32>
  func.return %z, %w : tensor<?x64xf32>, tensor<64x256xf32>
}
