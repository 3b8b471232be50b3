// Scales x by blk.0.ffn_up.weight, which tests/data/gguf/mini-pure-Q4_0.gguf
// stores as F16: quantir-run widens it to the declared f32 (exactly).
func.func @scale(%x: tensor<?x8x100xf32>) -> tensor<?x8x100xf32> {
  %w = quant.weight "blk.0.ffn_up.weight" : tensor<8x100xf32>
  %y = qnn.mul %x, %w : (tensor<?x8x100xf32>, tensor<8x100xf32>) -> tensor<?x8x100xf32>
  func.return %y : tensor<?x8x100xf32>
}
