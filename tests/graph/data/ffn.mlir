// Hand-written twin of build_ffn() in test_graph_builder.py.
func.func @ffn(%x: tensor<?x256xf32>) -> tensor<?x32xf32> {
  %norm = quant.weight "blk.0.ffn_norm.weight" : tensor<256xf32>
  %gate = quant.weight "blk.0.ffn_gate.weight" #quant.encoding<q4_k> [288, 256] : tensor<288x144xui8>
  %up = quant.weight "blk.0.ffn_up.weight" #quant.encoding<q4_k> [288, 256] : tensor<288x144xui8>
  %down = quant.weight "blk.0.ffn_down.weight" #quant.encoding<q5_0> [256, 288] : tensor<256x198xui8>
  %xn = qnn.mul %x, %norm : (tensor<?x256xf32>, tensor<256xf32>) -> tensor<?x256xf32>
  %g = quant.qmatmul #quant.encoding<q4_k> %xn, %gate : (tensor<?x256xf32>, tensor<288x144xui8>) -> tensor<?x288xf32>
  %u = quant.qmatmul #quant.encoding<q4_k> %xn, %up : (tensor<?x256xf32>, tensor<288x144xui8>) -> tensor<?x288xf32>
  %h = qnn.mul %g, %u : (tensor<?x288xf32>, tensor<?x288xf32>) -> tensor<?x288xf32>
  %d = quant.qmatmul #quant.encoding<q5_0> %h, %down : (tensor<?x288xf32>, tensor<256x198xui8>) -> tensor<?x256xf32>
  %r = qnn.add %x, %d : (tensor<?x256xf32>, tensor<?x256xf32>) -> tensor<?x256xf32>
  %head = quant.weight "output.weight" #quant.encoding<q6_k> [32, 256] : tensor<32x210xui8>
  %y = quant.qmatmul #quant.encoding<q6_k> %r, %head : (tensor<?x256xf32>, tensor<32x210xui8>) -> tensor<?x32xf32>
  func.return %y : tensor<?x32xf32>
}
