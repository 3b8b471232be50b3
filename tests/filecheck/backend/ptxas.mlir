// REQUIRES: ptxas
// RUN: quantir-opt %s -p quantir-gpu -t "ptx{arch=sm_90}" -o %t.sm90.ptx
// RUN: ptxas -arch=sm_90 %t.sm90.ptx -o %t.sm90.cubin
// RUN: quantir-opt %s -p quantir-gpu -t "ptx{arch=sm_80}" -o %t.sm80.ptx
// RUN: ptxas -arch=sm_80 %t.sm80.ptx -o %t.sm80.cubin

// The PTX of a graph using every kind of kernel assembles for sm_80 and
// sm_90 (tests/backend/test_ptx.py covers every encoding).
func.func @block(%x: tensor<?x512xf32>, %w: tensor<?x288xui8>, %w6: tensor<512x420xui8>, %b: tensor<512xf32>, %ids: tensor<?xi32>) -> (tensor<?x?xf32>, tensor<?x512xf32>, tensor<?x512xf32>) {
  %e = quant.gather #quant.encoding<q4_k> %w, %ids : (tensor<?x288xui8>, tensor<?xi32>) -> tensor<?x512xf32>
  %h = quant.qmatmul #quant.encoding<q4_k> %x, %w : (tensor<?x512xf32>, tensor<?x288xui8>) -> tensor<?x?xf32>
  %d = quant.dequantize #quant.encoding<q6_k> %w6 : (tensor<512x420xui8>) -> tensor<512x512xf32>
  %y = qnn.matmul %x, %d : (tensor<?x512xf32>, tensor<512x512xf32>) -> tensor<?x512xf32>
  %z = qnn.add %y, %b : (tensor<?x512xf32>, tensor<512xf32>) -> tensor<?x512xf32>
  func.return %h, %z, %e : tensor<?x?xf32>, tensor<?x512xf32>, tensor<?x512xf32>
}
