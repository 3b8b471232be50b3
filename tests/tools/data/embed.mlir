// Token ids -> their Q4_K embeddings (token_embd.weight, a quant.gather) ->
// logits through the Q6_K output head, with the weights of
// tests/data/gguf/tiny-llama-q4_k_m.gguf (a 32-token vocabulary).
func.func @embed(%ids: tensor<?xi32>) -> (tensor<?x256xf32>, tensor<?x32xf32>) {
  %table = quant.weight "token_embd.weight" #quant.encoding<q4_k> [32, 256] : tensor<32x144xui8>
  %head = quant.weight "output.weight" #quant.encoding<q6_k> [32, 256] : tensor<32x210xui8>
  %x = quant.gather #quant.encoding<q4_k> %table, %ids : (tensor<32x144xui8>, tensor<?xi32>) -> tensor<?x256xf32>
  %y = quant.qmatmul #quant.encoding<q6_k> %x, %head : (tensor<?x256xf32>, tensor<32x210xui8>) -> tensor<?x32xf32>
  func.return %x, %y : tensor<?x256xf32>, tensor<?x32xf32>
}
