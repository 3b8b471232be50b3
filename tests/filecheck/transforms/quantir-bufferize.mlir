// RUN: quantir-opt %s --split-input-file -p quantir-bufferize | filecheck %s

// A returned qmatmul writes straight into its output argument; the weight
// becomes an argument tagged with its name, encoding and logical shape.
func.func @linear(%x: tensor<?x64xf32>) -> tensor<?x32xf32> {
  %w = quant.weight "w" #quant.encoding<q8_0> [32, 64] : tensor<32x68xui8>
  %y = quant.qmatmul #quant.encoding<q8_0> %x, %w : (tensor<?x64xf32>, tensor<32x68xui8>) -> tensor<?x32xf32>
  func.return %y : tensor<?x32xf32>
}

// CHECK-LABEL: func.func @linear(
// CHECK-SAME:    %x: memref<?x64xf32> {qrt.input = 0 : i64}
// CHECK-SAME:    %w: memref<32x68xi8> {quant.weight = "w", quant.encoding = #quant.encoding<q8_0>, quant.shape = array<i64: 32, 64>}
// CHECK-SAME:    %out0: memref<?x32xf32> {qrt.output = 0 : i64, qrt.result_dims = array<i64: 0, 0>}
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q8_0> %x, %w outs(%out0) : (memref<?x64xf32>, memref<32x68xi8>, memref<?x32xf32>) -> ()
// CHECK-NEXT:    func.return

// -----

// An intermediate gets a buffer sized from the input, freed after its last
// use; dynamic dimensions that must agree are checked at run time.
func.func @chain(%x: tensor<?x64xf32>, %b: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %w = quant.weight "w" #quant.encoding<q8_0> [32, 64] : tensor<32x68xui8>
  %y = quant.qmatmul #quant.encoding<q8_0> %x, %w : (tensor<?x64xf32>, tensor<32x68xui8>) -> tensor<?x32xf32>
  %z = qnn.add %y, %b : (tensor<?x32xf32>, tensor<?x32xf32>) -> tensor<?x32xf32>
  func.return %z : tensor<?x32xf32>
}

// CHECK-LABEL: func.func @chain(
// CHECK:         [[M:%.*]] = memref.dim %x, %{{.*}} : memref<?x64xf32>
// CHECK-NEXT:    %y = memref.alloc([[M]]) : memref<?x32xf32>
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q8_0> %x, %w outs(%y)
// CHECK:         [[OK:%.*]] = arith.cmpi eq, %{{.*}}, %{{.*}} : index
// CHECK-NEXT:    qrt.check [[OK]], "qnn.add: dimension 0 of the operands differs"
// CHECK-NEXT:    qnn.add %y, %b outs(%out0)
// CHECK-NEXT:    memref.dealloc %y : memref<?x32xf32>
// CHECK-NEXT:    func.return

// -----

// GPTQ weights become four arguments, each tagged with its checkpoint part.
func.func @gptq(%x: tensor<?x64xf32>) -> tensor<?x32xf32> {
  %qw, %qz, %s, %g = quant.weight "l" #quant.encoding<gptq> [32, 64] config #quant.gptq<bits = 4, group_size = 32, desc_act = false, sym = true, format = gptq> : tensor<8x32xi32>, tensor<2x4xi32>, tensor<2x32xf16>, tensor<64xi32>
  %y = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 32, desc_act = false, sym = true, format = gptq> %x, %qw, %qz, %s, %g : (tensor<?x64xf32>, tensor<8x32xi32>, tensor<2x4xi32>, tensor<2x32xf16>, tensor<64xi32>) -> tensor<?x32xf32>
  func.return %y : tensor<?x32xf32>
}

// CHECK-LABEL: func.func @gptq(
// CHECK-SAME:    %qw: memref<8x32xi32> {quant.weight = "l", {{.*}}quant.weight_part = "qweight"}
// CHECK-SAME:    %qz: memref<2x4xi32> {quant.weight = "l", {{.*}}quant.weight_part = "qzeros"}
// CHECK-SAME:    %s: memref<2x32xf16> {quant.weight = "l", {{.*}}quant.weight_part = "scales"}
// CHECK-SAME:    %g: memref<64xi32> {quant.weight = "l", {{.*}}quant.weight_part = "g_idx"}

// -----

// GPTQ tensors passed as inputs with a dynamic N: the run-time checks tie
// qweight, scales and qzeros together.
func.func @gptq_dynamic(%x: tensor<?x64xf32>, %qw: tensor<8x?xi32>, %qz: tensor<2x?xi32>, %s: tensor<2x?xf16>, %g: tensor<64xi32>) -> tensor<?x?xf32> {
  %y = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 32, desc_act = false, sym = true, format = gptq> %x, %qw, %qz, %s, %g : (tensor<?x64xf32>, tensor<8x?xi32>, tensor<2x?xi32>, tensor<2x?xf16>, tensor<64xi32>) -> tensor<?x?xf32>
  func.return %y : tensor<?x?xf32>
}

// CHECK-LABEL: func.func @gptq_dynamic(
// CHECK-SAME:    qrt.result_dims = array<i64: 0, 0, 1, 1>
// CHECK:         qrt.check %{{.*}}, "quant.qmatmul: GPTQ qweight and scales disagree on N"
// CHECK:         [[Z:%.*]] = arith.muli %{{.*}}, %{{.*}} : index
// CHECK:         qrt.check %{{.*}}, "quant.qmatmul: GPTQ qzeros must have N*4/32 columns"

// -----

// Returning an input copies it; a value returned twice is copied to both,
// and the buffers are freed in the order of the results.
func.func @copies(%x: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>) {
  %y = qnn.mul %x, %x : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %z = qnn.add %x, %x : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  func.return %x, %z, %y, %y, %z : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>
}

// CHECK-LABEL: func.func @copies(
// CHECK:         %y = memref.alloc() : memref<4x8xf32>
// CHECK-NEXT:    qnn.mul %x, %x outs(%y)
// CHECK-NEXT:    %z = memref.alloc() : memref<4x8xf32>
// CHECK-NEXT:    qnn.add %x, %x outs(%z)
// CHECK-NEXT:    "memref.copy"(%x, %out0)
// CHECK-NEXT:    "memref.copy"(%z, %out1)
// CHECK-NEXT:    "memref.copy"(%y, %out2)
// CHECK-NEXT:    "memref.copy"(%y, %out3)
// CHECK-NEXT:    "memref.copy"(%z, %out4)
// CHECK-NEXT:    memref.dealloc %z
// CHECK-NEXT:    memref.dealloc %y

// -----

// A gather's indices argument records the argument whose rows it indexes
// (here the weight, argument 2; the same ids also index the input table,
// argument 1), so the runtime checks the values before any kernel runs. The
// result's dynamic dimension is the indices' dimension 0.
func.func @gather(%ids: tensor<?xi32>, %t: tensor<?x34xui8>) -> (tensor<?x256xf32>, tensor<?x32xf32>) {
  %w = quant.weight "token_embd.weight" #quant.encoding<q4_k> [64, 256] : tensor<64x144xui8>
  %e = quant.gather #quant.encoding<q4_k> %w, %ids : (tensor<64x144xui8>, tensor<?xi32>) -> tensor<?x256xf32>
  %f = quant.gather #quant.encoding<q8_0> %t, %ids : (tensor<?x34xui8>, tensor<?xi32>) -> tensor<?x32xf32>
  func.return %e, %f : tensor<?x256xf32>, tensor<?x32xf32>
}

// CHECK-LABEL: func.func @gather(
// CHECK-SAME:    %ids: memref<?xi32> {qrt.input = 0 : i64, qrt.row_indices = array<i64: 2, 1>}
// CHECK-SAME:    %t: memref<?x34xi8> {qrt.input = 1 : i64}
// CHECK-SAME:    %w: memref<64x144xi8> {quant.weight = "token_embd.weight"
// CHECK-SAME:    %out0: memref<?x256xf32> {qrt.output = 0 : i64, qrt.result_dims = array<i64: 0, 0>}
// CHECK-NEXT:    quant.gather #quant.encoding<q4_k> %w, %ids outs(%out0) : (memref<64x144xi8>, memref<?xi32>, memref<?x256xf32>) -> ()
// CHECK-NEXT:    quant.gather #quant.encoding<q8_0> %t, %ids outs(%out1) : (memref<?x34xi8>, memref<?xi32>, memref<?x32xf32>) -> ()
