// Round trips of the quant dialect: pretty form, pretty -> pretty, and generic -> pretty.
// RUN: quantir-opt --split-input-file %s | filecheck %s
// RUN: quantir-opt --split-input-file %s | quantir-opt --split-input-file | filecheck %s
// RUN: quantir-opt --split-input-file --print-op-generic %s | quantir-opt --split-input-file | filecheck %s
// The generic form itself (properties, operand segments):
// RUN: quantir-opt --split-input-file --print-op-generic %s | filecheck %s --check-prefix=GENERIC

// The example of the dialect's documentation: a Q4_K linear layer.
// CHECK-LABEL: func.func @linear(%x: tensor<?x4096xf32>) -> tensor<?x4096xf32> {
// CHECK-NEXT:    %w = quant.weight "linear.weight" #quant.encoding<q4_k> [4096, 4096] : tensor<4096x2304xui8>
// CHECK-NEXT:    %y = quant.qmatmul #quant.encoding<q4_k> %x, %w : (tensor<?x4096xf32>, tensor<4096x2304xui8>) -> tensor<?x4096xf32>
// CHECK-NEXT:    func.return %y : tensor<?x4096xf32>
// GENERIC-LABEL: "func.func"() <{sym_name = "linear"
// GENERIC:         %w = "quant.weight"() <{weight_name = "linear.weight", encoding = #quant.encoding<q4_k>, shape = array<i64: 4096, 4096>}> : () -> tensor<4096x2304xui8>
// GENERIC-NEXT:    %y = "quant.qmatmul"(%x, %w) <{encoding = #quant.encoding<q4_k>, operandSegmentSizes = array<i32: 1, 1, 0>}> : (tensor<?x4096xf32>, tensor<4096x2304xui8>) -> tensor<?x4096xf32>
func.func @linear(%x: tensor<?x4096xf32>) -> tensor<?x4096xf32> {
  %w = quant.weight "linear.weight" #quant.encoding<q4_k> [4096, 4096] : tensor<4096x2304xui8>
  %y = quant.qmatmul #quant.encoding<q4_k> %x, %w : (tensor<?x4096xf32>, tensor<4096x2304xui8>) -> tensor<?x4096xf32>
  func.return %y : tensor<?x4096xf32>
}

// -----

// Q4_0: 16 blocks of 18 bytes per row of 512 weights.
// CHECK-LABEL: func.func @q4_0
// CHECK:         %[[W:.*]] = quant.weight "q4_0.weight" #quant.encoding<q4_0> [8, 512] : tensor<8x288xui8>
// CHECK-NEXT:    %{{.*}} = quant.dequantize #quant.encoding<q4_0> %[[W]] : (tensor<8x288xui8>) -> tensor<8x512xf32>
// CHECK-NEXT:    %{{.*}} = quant.qmatmul #quant.encoding<q4_0> %x, %[[W]] : (tensor<?x512xf32>, tensor<8x288xui8>) -> tensor<?x8xf32>
// CHECK-NEXT:    quant.dequantize #quant.encoding<q4_0> %wb outs(%db) : (memref<8x288xi8>, memref<8x512xf32>) -> ()
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q4_0> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x288xi8>, memref<?x8xf32>) -> ()
func.func @q4_0(%x: tensor<?x512xf32>, %wb: memref<8x288xi8>, %db: memref<8x512xf32>, %xb: memref<?x512xf32>, %yb: memref<?x8xf32>) {
  %w = quant.weight "q4_0.weight" #quant.encoding<q4_0> [8, 512] : tensor<8x288xui8>
  %d = quant.dequantize #quant.encoding<q4_0> %w : (tensor<8x288xui8>) -> tensor<8x512xf32>
  %y = quant.qmatmul #quant.encoding<q4_0> %x, %w : (tensor<?x512xf32>, tensor<8x288xui8>) -> tensor<?x8xf32>
  quant.dequantize #quant.encoding<q4_0> %wb outs(%db) : (memref<8x288xi8>, memref<8x512xf32>) -> ()
  quant.qmatmul #quant.encoding<q4_0> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x288xi8>, memref<?x8xf32>) -> ()
  func.return
}

// -----

// Q4_K: 2 blocks of 144 bytes per row of 512 weights.
// CHECK-LABEL: func.func @q4_k
// CHECK:         %[[W:.*]] = quant.weight "q4_k.weight" #quant.encoding<q4_k> [8, 512] : tensor<8x288xui8>
// CHECK-NEXT:    %{{.*}} = quant.dequantize #quant.encoding<q4_k> %[[W]] : (tensor<8x288xui8>) -> tensor<8x512xf32>
// CHECK-NEXT:    %{{.*}} = quant.qmatmul #quant.encoding<q4_k> %x, %[[W]] : (tensor<?x512xf32>, tensor<8x288xui8>) -> tensor<?x8xf32>
// CHECK-NEXT:    quant.dequantize #quant.encoding<q4_k> %wb outs(%db) : (memref<8x288xi8>, memref<8x512xf32>) -> ()
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q4_k> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x288xi8>, memref<?x8xf32>) -> ()
func.func @q4_k(%x: tensor<?x512xf32>, %wb: memref<8x288xi8>, %db: memref<8x512xf32>, %xb: memref<?x512xf32>, %yb: memref<?x8xf32>) {
  %w = quant.weight "q4_k.weight" #quant.encoding<q4_k> [8, 512] : tensor<8x288xui8>
  %d = quant.dequantize #quant.encoding<q4_k> %w : (tensor<8x288xui8>) -> tensor<8x512xf32>
  %y = quant.qmatmul #quant.encoding<q4_k> %x, %w : (tensor<?x512xf32>, tensor<8x288xui8>) -> tensor<?x8xf32>
  quant.dequantize #quant.encoding<q4_k> %wb outs(%db) : (memref<8x288xi8>, memref<8x512xf32>) -> ()
  quant.qmatmul #quant.encoding<q4_k> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x288xi8>, memref<?x8xf32>) -> ()
  func.return
}

// -----

// Q5_K: 2 blocks of 176 bytes per row of 512 weights.
// CHECK-LABEL: func.func @q5_k
// CHECK:         %[[W:.*]] = quant.weight "q5_k.weight" #quant.encoding<q5_k> [8, 512] : tensor<8x352xui8>
// CHECK-NEXT:    %{{.*}} = quant.dequantize #quant.encoding<q5_k> %[[W]] : (tensor<8x352xui8>) -> tensor<8x512xf32>
// CHECK-NEXT:    %{{.*}} = quant.qmatmul #quant.encoding<q5_k> %x, %[[W]] : (tensor<?x512xf32>, tensor<8x352xui8>) -> tensor<?x8xf32>
// CHECK-NEXT:    quant.dequantize #quant.encoding<q5_k> %wb outs(%db) : (memref<8x352xi8>, memref<8x512xf32>) -> ()
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q5_k> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x352xi8>, memref<?x8xf32>) -> ()
func.func @q5_k(%x: tensor<?x512xf32>, %wb: memref<8x352xi8>, %db: memref<8x512xf32>, %xb: memref<?x512xf32>, %yb: memref<?x8xf32>) {
  %w = quant.weight "q5_k.weight" #quant.encoding<q5_k> [8, 512] : tensor<8x352xui8>
  %d = quant.dequantize #quant.encoding<q5_k> %w : (tensor<8x352xui8>) -> tensor<8x512xf32>
  %y = quant.qmatmul #quant.encoding<q5_k> %x, %w : (tensor<?x512xf32>, tensor<8x352xui8>) -> tensor<?x8xf32>
  quant.dequantize #quant.encoding<q5_k> %wb outs(%db) : (memref<8x352xi8>, memref<8x512xf32>) -> ()
  quant.qmatmul #quant.encoding<q5_k> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x352xi8>, memref<?x8xf32>) -> ()
  func.return
}

// -----

// Q6_K: 2 blocks of 210 bytes per row of 512 weights.
// CHECK-LABEL: func.func @q6_k
// CHECK:         %[[W:.*]] = quant.weight "q6_k.weight" #quant.encoding<q6_k> [8, 512] : tensor<8x420xui8>
// CHECK-NEXT:    %{{.*}} = quant.dequantize #quant.encoding<q6_k> %[[W]] : (tensor<8x420xui8>) -> tensor<8x512xf32>
// CHECK-NEXT:    %{{.*}} = quant.qmatmul #quant.encoding<q6_k> %x, %[[W]] : (tensor<?x512xf32>, tensor<8x420xui8>) -> tensor<?x8xf32>
// CHECK-NEXT:    quant.dequantize #quant.encoding<q6_k> %wb outs(%db) : (memref<8x420xi8>, memref<8x512xf32>) -> ()
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q6_k> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x420xi8>, memref<?x8xf32>) -> ()
func.func @q6_k(%x: tensor<?x512xf32>, %wb: memref<8x420xi8>, %db: memref<8x512xf32>, %xb: memref<?x512xf32>, %yb: memref<?x8xf32>) {
  %w = quant.weight "q6_k.weight" #quant.encoding<q6_k> [8, 512] : tensor<8x420xui8>
  %d = quant.dequantize #quant.encoding<q6_k> %w : (tensor<8x420xui8>) -> tensor<8x512xf32>
  %y = quant.qmatmul #quant.encoding<q6_k> %x, %w : (tensor<?x512xf32>, tensor<8x420xui8>) -> tensor<?x8xf32>
  quant.dequantize #quant.encoding<q6_k> %wb outs(%db) : (memref<8x420xi8>, memref<8x512xf32>) -> ()
  quant.qmatmul #quant.encoding<q6_k> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x420xi8>, memref<?x8xf32>) -> ()
  func.return
}

// -----

// Q8_0: 16 blocks of 34 bytes per row of 512 weights.
// CHECK-LABEL: func.func @q8_0
// CHECK:         %[[W:.*]] = quant.weight "q8_0.weight" #quant.encoding<q8_0> [8, 512] : tensor<8x544xui8>
// CHECK-NEXT:    %{{.*}} = quant.dequantize #quant.encoding<q8_0> %[[W]] : (tensor<8x544xui8>) -> tensor<8x512xf32>
// CHECK-NEXT:    %{{.*}} = quant.qmatmul #quant.encoding<q8_0> %x, %[[W]] : (tensor<?x512xf32>, tensor<8x544xui8>) -> tensor<?x8xf32>
// CHECK-NEXT:    quant.dequantize #quant.encoding<q8_0> %wb outs(%db) : (memref<8x544xi8>, memref<8x512xf32>) -> ()
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q8_0> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x544xi8>, memref<?x8xf32>) -> ()
func.func @q8_0(%x: tensor<?x512xf32>, %wb: memref<8x544xi8>, %db: memref<8x512xf32>, %xb: memref<?x512xf32>, %yb: memref<?x8xf32>) {
  %w = quant.weight "q8_0.weight" #quant.encoding<q8_0> [8, 512] : tensor<8x544xui8>
  %d = quant.dequantize #quant.encoding<q8_0> %w : (tensor<8x544xui8>) -> tensor<8x512xf32>
  %y = quant.qmatmul #quant.encoding<q8_0> %x, %w : (tensor<?x512xf32>, tensor<8x544xui8>) -> tensor<?x8xf32>
  quant.dequantize #quant.encoding<q8_0> %wb outs(%db) : (memref<8x544xi8>, memref<8x512xf32>) -> ()
  quant.qmatmul #quant.encoding<q8_0> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x544xi8>, memref<?x8xf32>) -> ()
  func.return
}

// -----

// Q5_0: 16 blocks of 22 bytes per row of 512 weights.
// CHECK-LABEL: func.func @q5_0
// CHECK:         %[[W:.*]] = quant.weight "q5_0.weight" #quant.encoding<q5_0> [8, 512] : tensor<8x352xui8>
// CHECK-NEXT:    %{{.*}} = quant.dequantize #quant.encoding<q5_0> %[[W]] : (tensor<8x352xui8>) -> tensor<8x512xf32>
// CHECK-NEXT:    %{{.*}} = quant.qmatmul #quant.encoding<q5_0> %x, %[[W]] : (tensor<?x512xf32>, tensor<8x352xui8>) -> tensor<?x8xf32>
// CHECK-NEXT:    quant.dequantize #quant.encoding<q5_0> %wb outs(%db) : (memref<8x352xi8>, memref<8x512xf32>) -> ()
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q5_0> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x352xi8>, memref<?x8xf32>) -> ()
func.func @q5_0(%x: tensor<?x512xf32>, %wb: memref<8x352xi8>, %db: memref<8x512xf32>, %xb: memref<?x512xf32>, %yb: memref<?x8xf32>) {
  %w = quant.weight "q5_0.weight" #quant.encoding<q5_0> [8, 512] : tensor<8x352xui8>
  %d = quant.dequantize #quant.encoding<q5_0> %w : (tensor<8x352xui8>) -> tensor<8x512xf32>
  %y = quant.qmatmul #quant.encoding<q5_0> %x, %w : (tensor<?x512xf32>, tensor<8x352xui8>) -> tensor<?x8xf32>
  quant.dequantize #quant.encoding<q5_0> %wb outs(%db) : (memref<8x352xi8>, memref<8x512xf32>) -> ()
  quant.qmatmul #quant.encoding<q5_0> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x352xi8>, memref<?x8xf32>) -> ()
  func.return
}

// -----

// Q4_1: 16 blocks of 20 bytes per row of 512 weights.
// CHECK-LABEL: func.func @q4_1
// CHECK:         %[[W:.*]] = quant.weight "q4_1.weight" #quant.encoding<q4_1> [8, 512] : tensor<8x320xui8>
// CHECK-NEXT:    %{{.*}} = quant.dequantize #quant.encoding<q4_1> %[[W]] : (tensor<8x320xui8>) -> tensor<8x512xf32>
// CHECK-NEXT:    %{{.*}} = quant.qmatmul #quant.encoding<q4_1> %x, %[[W]] : (tensor<?x512xf32>, tensor<8x320xui8>) -> tensor<?x8xf32>
// CHECK-NEXT:    quant.dequantize #quant.encoding<q4_1> %wb outs(%db) : (memref<8x320xi8>, memref<8x512xf32>) -> ()
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q4_1> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x320xi8>, memref<?x8xf32>) -> ()
func.func @q4_1(%x: tensor<?x512xf32>, %wb: memref<8x320xi8>, %db: memref<8x512xf32>, %xb: memref<?x512xf32>, %yb: memref<?x8xf32>) {
  %w = quant.weight "q4_1.weight" #quant.encoding<q4_1> [8, 512] : tensor<8x320xui8>
  %d = quant.dequantize #quant.encoding<q4_1> %w : (tensor<8x320xui8>) -> tensor<8x512xf32>
  %y = quant.qmatmul #quant.encoding<q4_1> %x, %w : (tensor<?x512xf32>, tensor<8x320xui8>) -> tensor<?x8xf32>
  quant.dequantize #quant.encoding<q4_1> %wb outs(%db) : (memref<8x320xi8>, memref<8x512xf32>) -> ()
  quant.qmatmul #quant.encoding<q4_1> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x320xi8>, memref<?x8xf32>) -> ()
  func.return
}

// -----

// Q5_1: 16 blocks of 24 bytes per row of 512 weights.
// CHECK-LABEL: func.func @q5_1
// CHECK:         %[[W:.*]] = quant.weight "q5_1.weight" #quant.encoding<q5_1> [8, 512] : tensor<8x384xui8>
// CHECK-NEXT:    %{{.*}} = quant.dequantize #quant.encoding<q5_1> %[[W]] : (tensor<8x384xui8>) -> tensor<8x512xf32>
// CHECK-NEXT:    %{{.*}} = quant.qmatmul #quant.encoding<q5_1> %x, %[[W]] : (tensor<?x512xf32>, tensor<8x384xui8>) -> tensor<?x8xf32>
// CHECK-NEXT:    quant.dequantize #quant.encoding<q5_1> %wb outs(%db) : (memref<8x384xi8>, memref<8x512xf32>) -> ()
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q5_1> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x384xi8>, memref<?x8xf32>) -> ()
func.func @q5_1(%x: tensor<?x512xf32>, %wb: memref<8x384xi8>, %db: memref<8x512xf32>, %xb: memref<?x512xf32>, %yb: memref<?x8xf32>) {
  %w = quant.weight "q5_1.weight" #quant.encoding<q5_1> [8, 512] : tensor<8x384xui8>
  %d = quant.dequantize #quant.encoding<q5_1> %w : (tensor<8x384xui8>) -> tensor<8x512xf32>
  %y = quant.qmatmul #quant.encoding<q5_1> %x, %w : (tensor<?x512xf32>, tensor<8x384xui8>) -> tensor<?x8xf32>
  quant.dequantize #quant.encoding<q5_1> %wb outs(%db) : (memref<8x384xi8>, memref<8x512xf32>) -> ()
  quant.qmatmul #quant.encoding<q5_1> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x384xi8>, memref<?x8xf32>) -> ()
  func.return
}

// -----

// Q2_K: 2 blocks of 84 bytes per row of 512 weights.
// CHECK-LABEL: func.func @q2_k
// CHECK:         %[[W:.*]] = quant.weight "q2_k.weight" #quant.encoding<q2_k> [8, 512] : tensor<8x168xui8>
// CHECK-NEXT:    %{{.*}} = quant.dequantize #quant.encoding<q2_k> %[[W]] : (tensor<8x168xui8>) -> tensor<8x512xf32>
// CHECK-NEXT:    %{{.*}} = quant.qmatmul #quant.encoding<q2_k> %x, %[[W]] : (tensor<?x512xf32>, tensor<8x168xui8>) -> tensor<?x8xf32>
// CHECK-NEXT:    quant.dequantize #quant.encoding<q2_k> %wb outs(%db) : (memref<8x168xi8>, memref<8x512xf32>) -> ()
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q2_k> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x168xi8>, memref<?x8xf32>) -> ()
func.func @q2_k(%x: tensor<?x512xf32>, %wb: memref<8x168xi8>, %db: memref<8x512xf32>, %xb: memref<?x512xf32>, %yb: memref<?x8xf32>) {
  %w = quant.weight "q2_k.weight" #quant.encoding<q2_k> [8, 512] : tensor<8x168xui8>
  %d = quant.dequantize #quant.encoding<q2_k> %w : (tensor<8x168xui8>) -> tensor<8x512xf32>
  %y = quant.qmatmul #quant.encoding<q2_k> %x, %w : (tensor<?x512xf32>, tensor<8x168xui8>) -> tensor<?x8xf32>
  quant.dequantize #quant.encoding<q2_k> %wb outs(%db) : (memref<8x168xi8>, memref<8x512xf32>) -> ()
  quant.qmatmul #quant.encoding<q2_k> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x168xi8>, memref<?x8xf32>) -> ()
  func.return
}

// -----

// Q3_K: 2 blocks of 110 bytes per row of 512 weights.
// CHECK-LABEL: func.func @q3_k
// CHECK:         %[[W:.*]] = quant.weight "q3_k.weight" #quant.encoding<q3_k> [8, 512] : tensor<8x220xui8>
// CHECK-NEXT:    %{{.*}} = quant.dequantize #quant.encoding<q3_k> %[[W]] : (tensor<8x220xui8>) -> tensor<8x512xf32>
// CHECK-NEXT:    %{{.*}} = quant.qmatmul #quant.encoding<q3_k> %x, %[[W]] : (tensor<?x512xf32>, tensor<8x220xui8>) -> tensor<?x8xf32>
// CHECK-NEXT:    quant.dequantize #quant.encoding<q3_k> %wb outs(%db) : (memref<8x220xi8>, memref<8x512xf32>) -> ()
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q3_k> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x220xi8>, memref<?x8xf32>) -> ()
func.func @q3_k(%x: tensor<?x512xf32>, %wb: memref<8x220xi8>, %db: memref<8x512xf32>, %xb: memref<?x512xf32>, %yb: memref<?x8xf32>) {
  %w = quant.weight "q3_k.weight" #quant.encoding<q3_k> [8, 512] : tensor<8x220xui8>
  %d = quant.dequantize #quant.encoding<q3_k> %w : (tensor<8x220xui8>) -> tensor<8x512xf32>
  %y = quant.qmatmul #quant.encoding<q3_k> %x, %w : (tensor<?x512xf32>, tensor<8x220xui8>) -> tensor<?x8xf32>
  quant.dequantize #quant.encoding<q3_k> %wb outs(%db) : (memref<8x220xi8>, memref<8x512xf32>) -> ()
  quant.qmatmul #quant.encoding<q3_k> %xb, %wb outs(%yb) : (memref<?x512xf32>, memref<8x220xi8>, memref<?x8xf32>) -> ()
  func.return
}

// -----

// Packed bytes may be unsigned (ui8) or signless (i8) bytes; static or
// dynamic N on the consumers.
// CHECK-LABEL: func.func @byte_types
// CHECK:         %w = quant.weight "w" #quant.encoding<q8_0> [4, 64] : tensor<4x68xi8>
// CHECK-NEXT:    %d = quant.dequantize #quant.encoding<q8_0> %w : (tensor<4x68xi8>) -> tensor<4x64xf32>
// CHECK-NEXT:    %d2 = quant.dequantize #quant.encoding<q6_k> %v : (tensor<?x210xui8>) -> tensor<?x256xf32>
// CHECK-NEXT:    %y = quant.qmatmul #quant.encoding<q6_k> %x, %v : (tensor<3x256xf32>, tensor<?x210xui8>) -> tensor<3x?xf32>
func.func @byte_types(%v: tensor<?x210xui8>, %x: tensor<3x256xf32>) {
  %w = quant.weight "w" #quant.encoding<q8_0> [4, 64] : tensor<4x68xi8>
  %d = quant.dequantize #quant.encoding<q8_0> %w : (tensor<4x68xi8>) -> tensor<4x64xf32>
  %d2 = quant.dequantize #quant.encoding<q6_k> %v : (tensor<?x210xui8>) -> tensor<?x256xf32>
  %y = quant.qmatmul #quant.encoding<q6_k> %x, %v : (tensor<3x256xf32>, tensor<?x210xui8>) -> tensor<3x?xf32>
  func.return
}

// -----

// x of rank 1, 2 and 3, with static and dynamic leading dimensions.
// CHECK-LABEL: func.func @qmatmul_ranks
// CHECK:         %y1 = quant.qmatmul #quant.encoding<q5_k> %x1, %w : (tensor<256xf32>, tensor<16x176xui8>) -> tensor<16xf32>
// CHECK-NEXT:    %y2 = quant.qmatmul #quant.encoding<q5_k> %x2, %w : (tensor<7x256xf32>, tensor<16x176xui8>) -> tensor<7x16xf32>
// CHECK-NEXT:    %y3 = quant.qmatmul #quant.encoding<q5_k> %x3, %w : (tensor<2x?x256xf32>, tensor<16x176xui8>) -> tensor<2x?x16xf32>
// CHECK-NEXT:    %y4 = quant.qmatmul #quant.encoding<q5_k> %x4, %w : (tensor<?x?x256xf32>, tensor<16x176xui8>) -> tensor<?x?x16xf32>
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q5_k> %b1, %wb outs(%o1) : (memref<256xf32>, memref<16x176xi8>, memref<16xf32>) -> ()
// CHECK-NEXT:    quant.qmatmul #quant.encoding<q5_k> %b3, %wb outs(%o3) : (memref<?x3x256xf32>, memref<16x176xi8>, memref<?x3x16xf32>) -> ()
func.func @qmatmul_ranks(%x1: tensor<256xf32>, %x2: tensor<7x256xf32>, %x3: tensor<2x?x256xf32>, %x4: tensor<?x?x256xf32>, %b1: memref<256xf32>, %b3: memref<?x3x256xf32>, %wb: memref<16x176xi8>, %o1: memref<16xf32>, %o3: memref<?x3x16xf32>) {
  %w = quant.weight "w" #quant.encoding<q5_k> [16, 256] : tensor<16x176xui8>
  %y1 = quant.qmatmul #quant.encoding<q5_k> %x1, %w : (tensor<256xf32>, tensor<16x176xui8>) -> tensor<16xf32>
  %y2 = quant.qmatmul #quant.encoding<q5_k> %x2, %w : (tensor<7x256xf32>, tensor<16x176xui8>) -> tensor<7x16xf32>
  %y3 = quant.qmatmul #quant.encoding<q5_k> %x3, %w : (tensor<2x?x256xf32>, tensor<16x176xui8>) -> tensor<2x?x16xf32>
  %y4 = quant.qmatmul #quant.encoding<q5_k> %x4, %w : (tensor<?x?x256xf32>, tensor<16x176xui8>) -> tensor<?x?x16xf32>
  quant.qmatmul #quant.encoding<q5_k> %b1, %wb outs(%o1) : (memref<256xf32>, memref<16x176xi8>, memref<16xf32>) -> ()
  quant.qmatmul #quant.encoding<q5_k> %b3, %wb outs(%o3) : (memref<?x3x256xf32>, memref<16x176xi8>, memref<?x3x16xf32>) -> ()
  func.return
}

// -----

// GPTQ with every bits value (N=64, K=256, group_size=64: 4 groups).
// qweight is [K*bits/32, N], qzeros [G, N*bits/32], scales [G, N] f16, g_idx [K].
// CHECK-LABEL: func.func @gptq_bits
// CHECK:         %q2, %q2_1, %q2_2, %q2_3 = quant.weight "b2.weight" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 2, group_size = 64, desc_act = false, sym = true, format = gptq> : tensor<16x64xi32>, tensor<4x4xi32>, tensor<4x64xf16>, tensor<256xi32>
// CHECK-NEXT:    %q3, %q3_1, %q3_2, %q3_3 = quant.weight "b3.weight" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 3, group_size = 64, desc_act = false, sym = true, format = gptq> : tensor<24x64xi32>, tensor<4x6xi32>, tensor<4x64xf16>, tensor<256xi32>
// CHECK-NEXT:    %q4, %q4_1, %q4_2, %q4_3 = quant.weight "b4.weight" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true, format = gptq> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
// CHECK-NEXT:    %q8, %q8_1, %q8_2, %q8_3 = quant.weight "b8.weight" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 8, group_size = 64, desc_act = false, sym = true, format = gptq> : tensor<64x64xi32>, tensor<4x16xi32>, tensor<4x64xf16>, tensor<256xi32>
// CHECK-NEXT:    %y2 = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 2, group_size = 64, desc_act = false, sym = true, format = gptq> %x, %q2, %q2_1, %q2_2, %q2_3 : (tensor<?x256xf32>, tensor<16x64xi32>, tensor<4x4xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<?x64xf32>
// CHECK-NEXT:    %y3 = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 3, group_size = 64, desc_act = false, sym = true, format = gptq> %x, %q3, %q3_1, %q3_2, %q3_3 : (tensor<?x256xf32>, tensor<24x64xi32>, tensor<4x6xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<?x64xf32>
// CHECK-NEXT:    %y4 = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true, format = gptq> %x, %q4, %q4_1, %q4_2, %q4_3 : (tensor<?x256xf32>, tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<?x64xf32>
// CHECK-NEXT:    %y8 = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 8, group_size = 64, desc_act = false, sym = true, format = gptq> %x, %q8, %q8_1, %q8_2, %q8_3 : (tensor<?x256xf32>, tensor<64x64xi32>, tensor<4x16xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<?x64xf32>
// CHECK-NEXT:    %d3 = quant.dequantize #quant.encoding<gptq> config #quant.gptq<bits = 3, group_size = 64, desc_act = false, sym = true, format = gptq> %q3, %q3_1, %q3_2, %q3_3 : (tensor<24x64xi32>, tensor<4x6xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<64x256xf32>
func.func @gptq_bits(%x: tensor<?x256xf32>) {
  %q2:4 = quant.weight "b2.weight" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 2, group_size = 64, desc_act = false, sym = true> : tensor<16x64xi32>, tensor<4x4xi32>, tensor<4x64xf16>, tensor<256xi32>
  %q3:4 = quant.weight "b3.weight" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 3, group_size = 64, desc_act = false, sym = true> : tensor<24x64xi32>, tensor<4x6xi32>, tensor<4x64xf16>, tensor<256xi32>
  %q4:4 = quant.weight "b4.weight" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> : tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>
  %q8:4 = quant.weight "b8.weight" #quant.encoding<gptq> [64, 256] config #quant.gptq<bits = 8, group_size = 64, desc_act = false, sym = true> : tensor<64x64xi32>, tensor<4x16xi32>, tensor<4x64xf16>, tensor<256xi32>
  %y2 = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 2, group_size = 64, desc_act = false, sym = true> %x, %q2#0, %q2#1, %q2#2, %q2#3 : (tensor<?x256xf32>, tensor<16x64xi32>, tensor<4x4xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<?x64xf32>
  %y3 = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 3, group_size = 64, desc_act = false, sym = true> %x, %q3#0, %q3#1, %q3#2, %q3#3 : (tensor<?x256xf32>, tensor<24x64xi32>, tensor<4x6xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<?x64xf32>
  %y4 = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true> %x, %q4#0, %q4#1, %q4#2, %q4#3 : (tensor<?x256xf32>, tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<?x64xf32>
  %y8 = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 8, group_size = 64, desc_act = false, sym = true> %x, %q8#0, %q8#1, %q8#2, %q8#3 : (tensor<?x256xf32>, tensor<64x64xi32>, tensor<4x16xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<?x64xf32>
  %d3 = quant.dequantize #quant.encoding<gptq> config #quant.gptq<bits = 3, group_size = 64, desc_act = false, sym = true> %q3#0, %q3#1, %q3#2, %q3#3 : (tensor<24x64xi32>, tensor<4x6xi32>, tensor<4x64xf16>, tensor<256xi32>) -> tensor<64x256xf32>
  func.return
}

// -----

// group_size -1 (one group over all of K); desc_act, asymmetric, the v2
// zero-point format; fields in any order; signed i32 words.
// CHECK-LABEL: func.func @gptq_config_fields
// CHECK:         %qw, %qz, %s, %g = quant.weight "l.weight" #quant.encoding<gptq> [32, 128] config #quant.gptq<bits = 4, group_size = -1, desc_act = true, sym = false, format = gptq_v2> : tensor<16x32xi32>, tensor<1x4xi32>, tensor<1x32xf16>, tensor<128xi32>
// CHECK-NEXT:    %d = quant.dequantize #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = -1, desc_act = true, sym = false, format = gptq_v2> %qw, %qz, %s, %g : (tensor<16x32xi32>, tensor<1x4xi32>, tensor<1x32xf16>, tensor<128xi32>) -> tensor<32x128xf32>
// CHECK-NEXT:    %e = quant.dequantize #quant.encoding<gptq> config #quant.gptq<bits = 8, group_size = 128, desc_act = false, sym = false, format = gptq> %a, %b, %c, %i : (tensor<32x32xi32>, tensor<1x8xi32>, tensor<1x32xf16>, tensor<128xi32>) -> tensor<32x128xf32>
// GENERIC-LABEL: "func.func"() <{sym_name = "gptq_config_fields"
// GENERIC:         "quant.weight"() <{weight_name = "l.weight", encoding = #quant.encoding<gptq>, shape = array<i64: 32, 128>, config = #quant.gptq<bits = 4, group_size = -1, desc_act = true, sym = false, format = gptq_v2>}>
// GENERIC-NEXT:    "quant.dequantize"(%qw, %qz, %s, %g) <{encoding = #quant.encoding<gptq>, config = #quant.gptq<bits = 4, group_size = -1, desc_act = true, sym = false, format = gptq_v2>, operandSegmentSizes = array<i32: 4, 0>}>
func.func @gptq_config_fields(%a: tensor<32x32xi32>, %b: tensor<1x8xi32>, %c: tensor<1x32xf16>, %i: tensor<128xi32>) {
  %qw, %qz, %s, %g = quant.weight "l.weight" #quant.encoding<gptq> [32, 128] config #quant.gptq<format = gptq_v2, sym = false, desc_act = true, group_size = -1, bits = 4> : tensor<16x32xi32>, tensor<1x4xi32>, tensor<1x32xf16>, tensor<128xi32>
  %d = quant.dequantize #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = -1, desc_act = true, sym = false, format = gptq_v2> %qw, %qz, %s, %g : (tensor<16x32xi32>, tensor<1x4xi32>, tensor<1x32xf16>, tensor<128xi32>) -> tensor<32x128xf32>
  %e = quant.dequantize #quant.encoding<gptq> config #quant.gptq<bits = 8, group_size = 128, desc_act = false, sym = false, format = gptq> %a, %b, %c, %i : (tensor<32x32xi32>, tensor<1x8xi32>, tensor<1x32xf16>, tensor<128xi32>) -> tensor<32x128xf32>
  func.return
}

// -----

// GPTQ on memrefs (the destination-passing form), with a dynamic N on the
// dequantized buffer and dynamic rows of x.
// CHECK-LABEL: func.func @gptq_outs
// CHECK:         quant.dequantize #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 32, desc_act = false, sym = true, format = gptq> %qw, %qz, %s, %g outs(%d) : (memref<8x64xi32>, memref<2x8xi32>, memref<2x64xf16>, memref<64xi32>, memref<?x64xf32>) -> ()
// CHECK-NEXT:    quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 32, desc_act = false, sym = true, format = gptq> %x, %qw, %qz, %s, %g outs(%y) : (memref<?x64xf32>, memref<8x64xi32>, memref<2x8xi32>, memref<2x64xf16>, memref<64xi32>, memref<?x64xf32>) -> ()
// GENERIC-LABEL: "func.func"() <{sym_name = "gptq_outs"
// GENERIC:         "quant.dequantize"(%qw, %qz, %s, %g, %d) <{encoding = #quant.encoding<gptq>, config = #quant.gptq<bits = 4, group_size = 32, desc_act = false, sym = true, format = gptq>, operandSegmentSizes = array<i32: 4, 1>}>
// GENERIC-NEXT:    "quant.qmatmul"(%x, %qw, %qz, %s, %g, %y) <{encoding = #quant.encoding<gptq>, config = #quant.gptq<bits = 4, group_size = 32, desc_act = false, sym = true, format = gptq>, operandSegmentSizes = array<i32: 1, 4, 1>}>
func.func @gptq_outs(%qw: memref<8x64xi32>, %qz: memref<2x8xi32>, %s: memref<2x64xf16>, %g: memref<64xi32>, %d: memref<?x64xf32>, %x: memref<?x64xf32>, %y: memref<?x64xf32>) {
  quant.dequantize #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 32, desc_act = false, sym = true> %qw, %qz, %s, %g outs(%d) : (memref<8x64xi32>, memref<2x8xi32>, memref<2x64xf16>, memref<64xi32>, memref<?x64xf32>) -> ()
  quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 32, desc_act = false, sym = true> %x, %qw, %qz, %s, %g outs(%y) : (memref<?x64xf32>, memref<8x64xi32>, memref<2x8xi32>, memref<2x64xf16>, memref<64xi32>, memref<?x64xf32>) -> ()
  func.return
}

// -----

// Float weights give only their type (any element type, static shape).
// CHECK-LABEL: func.func @float_weights
// CHECK:         %b = quant.weight "output.bias" : tensor<1024xf32>
// CHECK-NEXT:    %w = quant.weight "proj.weight" : tensor<64x32xf32>
// CHECK-NEXT:    %h = quant.weight "norm.weight" : tensor<64xf16>
// CHECK-NEXT:    %t = quant.weight "table" : tensor<2x3x4xi32>
// GENERIC-LABEL: "func.func"() <{sym_name = "float_weights"
// GENERIC:         %b = "quant.weight"() <{weight_name = "output.bias"}> : () -> tensor<1024xf32>
func.func @float_weights() {
  %b = quant.weight "output.bias" : tensor<1024xf32>
  %w = quant.weight "proj.weight" : tensor<64x32xf32>
  %h = quant.weight "norm.weight" : tensor<64xf16>
  %t = quant.weight "table" : tensor<2x3x4xi32>
  func.return
}

// -----

// quant.gather: rows of a packed table by index, in both forms; indices are
// i32 or i64 of any rank, the result [*indices.shape, K].
// CHECK-LABEL: func.func @gather
// CHECK:         %e = quant.gather #quant.encoding<q4_k> %t, %ids : (tensor<32000x144xui8>, tensor<?xi32>) -> tensor<?x256xf32>
// CHECK-NEXT:    %f = quant.gather #quant.encoding<q6_k> %u, %ids2 {tag = 1 : i64} : (tensor<8x210xui8>, tensor<2x?xi64>) -> tensor<2x?x256xf32>
// CHECK-NEXT:    quant.gather #quant.encoding<q8_0> %tb, %ib outs(%eb) : (memref<?x34xi8>, memref<?xi64>, memref<?x32xf32>) -> ()
// GENERIC-LABEL: "func.func"() <{sym_name = "gather"
// GENERIC:         %e = "quant.gather"(%t, %ids) <{encoding = #quant.encoding<q4_k>, operandSegmentSizes = array<i32: 1, 1, 0>}> : (tensor<32000x144xui8>, tensor<?xi32>) -> tensor<?x256xf32>
func.func @gather(%t: tensor<32000x144xui8>, %ids: tensor<?xi32>, %u: tensor<8x210xui8>, %ids2: tensor<2x?xi64>, %tb: memref<?x34xi8>, %ib: memref<?xi64>, %eb: memref<?x32xf32>) -> (tensor<?x256xf32>, tensor<2x?x256xf32>) {
  %e = quant.gather #quant.encoding<q4_k> %t, %ids : (tensor<32000x144xui8>, tensor<?xi32>) -> tensor<?x256xf32>
  %f = quant.gather #quant.encoding<q6_k> %u, %ids2 {tag = 1 : i64} : (tensor<8x210xui8>, tensor<2x?xi64>) -> tensor<2x?x256xf32>
  quant.gather #quant.encoding<q8_0> %tb, %ib outs(%eb) : (memref<?x34xi8>, memref<?xi64>, memref<?x32xf32>) -> ()
  func.return %e, %f : tensor<?x256xf32>, tensor<2x?x256xf32>
}

// -----

// Discardable attributes survive on every op; weight names are any string.
// CHECK-LABEL: func.func @extra_attributes
// CHECK:         %w = quant.weight "blk.0.attn_q.weight \22quoted\22" #quant.encoding<q4_0> [2, 32] {origin = "gguf"} : tensor<2x18xui8>
// CHECK-NEXT:    %d = quant.dequantize #quant.encoding<q4_0> %w {tag = 1 : i64} : (tensor<2x18xui8>) -> tensor<2x32xf32>
// CHECK-NEXT:    %y = quant.qmatmul #quant.encoding<q4_0> %x, %w {tag = 2 : i64} : (tensor<1x32xf32>, tensor<2x18xui8>) -> tensor<1x2xf32>
// CHECK-NEXT:    %f = quant.weight "f" {origin = "safetensors"} : tensor<2xf32>
func.func @extra_attributes(%x: tensor<1x32xf32>) {
  %w = quant.weight "blk.0.attn_q.weight \"quoted\"" #quant.encoding<q4_0> [2, 32] {origin = "gguf"} : tensor<2x18xui8>
  %d = quant.dequantize #quant.encoding<q4_0> %w {tag = 1 : i64} : (tensor<2x18xui8>) -> tensor<2x32xf32>
  %y = quant.qmatmul #quant.encoding<q4_0> %x, %w {tag = 2 : i64} : (tensor<1x32xf32>, tensor<2x18xui8>) -> tensor<1x2xf32>
  %f = quant.weight "f" {origin = "safetensors"} : tensor<2xf32>
  func.return
}

// -----

// The attributes on their own, as bufferization leaves them on the arguments
// of a graph function (the runtime's contract, see dialects/qrt.py).
// CHECK-LABEL: func.func @weight_arguments
// CHECK-SAME:    %w: memref<8x288xi8> {quant.weight = "linear.weight", quant.encoding = #quant.encoding<q4_k>, quant.shape = array<i64: 8, 512>}
// CHECK-SAME:    %qw: memref<32x64xi32> {quant.weight = "l.weight", quant.weight_part = "qweight", quant.encoding = #quant.encoding<gptq>, quant.config = #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true, format = gptq_v2>}
// CHECK-SAME:    attributes {encodings = [#quant.encoding<q4_0>, #quant.encoding<q4_k>, #quant.encoding<q5_k>, #quant.encoding<q6_k>, #quant.encoding<gptq>, #quant.encoding<q8_0>, #quant.encoding<q5_0>, #quant.encoding<q4_1>, #quant.encoding<q5_1>, #quant.encoding<q2_k>, #quant.encoding<q3_k>]}
func.func @weight_arguments(%w: memref<8x288xi8> {quant.weight = "linear.weight", quant.encoding = #quant.encoding<q4_k>, quant.shape = array<i64: 8, 512>}, %qw: memref<32x64xi32> {quant.weight = "l.weight", quant.weight_part = "qweight", quant.encoding = #quant.encoding<gptq>, quant.config = #quant.gptq<bits = 4, group_size = 64, desc_act = false, sym = true, format = gptq_v2>}) attributes {encodings = [#quant.encoding<q4_0>, #quant.encoding<q4_k>, #quant.encoding<q5_k>, #quant.encoding<q6_k>, #quant.encoding<gptq>, #quant.encoding<q8_0>, #quant.encoding<q5_0>, #quant.encoding<q4_1>, #quant.encoding<q5_1>, #quant.encoding<q2_k>, #quant.encoding<q3_k>]} {
  func.return
}
