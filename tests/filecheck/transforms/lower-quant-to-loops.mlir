// RUN: quantir-opt %s --split-input-file -p "lower-quant-to-loops{int8=false}" | filecheck %s
// RUN: quantir-opt %s --split-input-file -p lower-quant-to-loops | filecheck %s --check-prefix=INT8
// RUN: quantir-opt %s --split-input-file -p "lower-quant-to-loops{amx=on}" | filecheck %s --check-prefix=AMX
// RUN: quantir-opt %s --split-input-file -p "lower-quant-to-loops{vectorize=false m_tile=1}" | filecheck %s --check-prefix=SCALAR

// Q4_0 dequantize, vectorized: each 16-byte lane group becomes vector ops
// and two non-temporal 16-float stores; the fp16 scale is widened exactly.
func.func @dequantize_q4_0(%w: memref<?x18xi8>, %y: memref<?x32xf32>) {
  quant.dequantize #quant.encoding<q4_0> %w outs(%y) : (memref<?x18xi8>, memref<?x32xf32>) -> ()
  func.return
}

// CHECK-LABEL: func.func @dequantize_q4_0(
// CHECK:         "scf.parallel"
// CHECK:           vector.load %w[%{{.*}}, %{{.*}}] : memref<?x18xi8>, vector<2xi8>
// CHECK:           vector.bitcast %{{.*}} : vector<2xi8> to vector<1xf16>
// CHECK:           arith.extf %{{.*}} : f16 to f32
// CHECK:           [[Q:%.*]] = vector.load %w[%{{.*}}, %{{.*}}] : memref<?x18xi8>, vector<16xi8>
// CHECK:           arith.andi [[Q]], %{{.*}} : vector<16xi8>
// CHECK:           arith.subi %{{.*}}, %{{.*}} : vector<16xi8>
// CHECK:           arith.sitofp %{{.*}} : vector<16xi8> to vector<16xf32>
// CHECK:           arith.mulf %{{.*}}, %{{.*}} : vector<16xf32>
// CHECK:           vector.store %{{.*}}, %y[%{{.*}}, %{{.*}}] {nontemporal = true} : memref<?x32xf32>, vector<16xf32>
// CHECK:           arith.shrui [[Q]], %{{.*}} : vector<16xi8>
// CHECK:           vector.store
// CHECK:         }) {qrt.loop = "rows", qrt.gpu_mapping = "lanes"}

// SCALAR-LABEL: func.func @dequantize_q4_0(
// SCALAR:         "scf.parallel"
// SCALAR:           scf.for
// SCALAR:             memref.load %w[%{{.*}}, %{{.*}}] : memref<?x18xi8>
// SCALAR:             arith.sitofp %{{.*}} : i8 to f32
// SCALAR:             memref.store %{{.*}}, %y[%{{.*}}, %{{.*}}] : memref<?x32xf32>
// SCALAR:           } {qrt.loop = "lanes"}
// SCALAR:         }) {qrt.loop = "rows", qrt.gpu_mapping = "lanes"}

// -----

// Q4_K qmatmul, exact path (int8=false): sums of x per 32-weight sub-block are precomputed, the
// eight scales and mins of a block are unpacked as vectors, and the block
// loop accumulates with FMAs (rows of x tiled by 4, then one at a time).
func.func @qmatmul_q4_k(%x: memref<?x256xf32>, %w: memref<?x144xi8>, %y: memref<?x?xf32>) {
  quant.qmatmul #quant.encoding<q4_k> %x, %w outs(%y) : (memref<?x256xf32>, memref<?x144xi8>, memref<?x?xf32>) -> ()
  func.return
}

// CHECK-LABEL: func.func @qmatmul_q4_k(
// CHECK:         [[XS:%.*]] = memref.alloc(%{{.*}}) : memref<?x8xf32>
// CHECK:         vector.reduction <add>, %{{.*}} fastmath<fast> : vector<32xf32> into f32
// CHECK:         {qrt.loop = "rows"}
// CHECK:         "scf.parallel"
// CHECK:           vector.shuffle
// CHECK:           arith.uitofp %{{.*}} : vector<8xi8> to vector<8xf32>
// CHECK:           vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<32xf32>
// CHECK:           {qrt.loop = "reduction"}
// CHECK:         }) {qrt.loop = "rows", qrt.gpu_mapping = "warp"}
// CHECK:         memref.dealloc [[XS]]

// The default (INT8): x is quantized once to int8 runs of 32 (codes, scales,
// and the sums of the quantized values per sub-block); the weight's stored
// codes are multiplied with qrt.dot_u8i8, each dot converted once and
// accumulated with an FMA, scaled per lane by sub-block scale times x scale.
// INT8-LABEL: func.func @qmatmul_q4_k(
// INT8:         [[XQ:%.*]] = memref.alloc(%{{.*}}) : memref<?x256xi8>
// INT8:         [[XD:%.*]] = memref.alloc(%{{.*}}) : memref<?x8xf32>
// INT8:         [[QS:%.*]] = memref.alloc(%{{.*}}) : memref<?x8xf32>
// INT8:         vector.reduction <maximumf>, %{{.*}} : vector<32xf32> into f32
// INT8:         arith.trunci %{{.*}} : vector<32xi32> to vector<32xi8>
// INT8:         }) {qrt.loop = "rows"}
// INT8:         "scf.parallel"
// INT8:           vector.load [[XD]][%{{.*}}, %{{.*}}] : memref<?x8xf32>, vector<8xf32>
// INT8:           vector.load [[XQ]][%{{.*}}, %{{.*}}] : memref<?x256xi8>, vector<32xi8>
// INT8-NEXT:      qrt.dot_u8i8 %{{.*}}, %{{.*}}, %{{.*}} {code_bits = 4 : i64} : vector<32xi8> into vector<8xi32>
// INT8-NEXT:      arith.sitofp %{{.*}} : vector<8xi32> to vector<8xf32>
// INT8-NEXT:      vector.shuffle
// INT8-NEXT:      vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<8xf32>
// INT8:           {qrt.loop = "reduction"}
// INT8:         }) {qrt.loop = "rows", qrt.gpu_mapping = "warp"}
// INT8:         memref.dealloc [[XQ]]
// INT8-NEXT:    memref.dealloc [[XD]]
// INT8-NEXT:    memref.dealloc [[QS]]

// With amx=on (the quantir-cpu pipeline's choice on hosts with AMX-INT8 tiles),
// x's codes are also laid out as VNNI tiles and its scales and sums transposed
// per 16 rows (a kernel that runs only for >= 16 rows of x); each task of 16
// weight rows unpacks its codes step-major into stack scratch once, then per
// 16 rows of x and per sub-block of 32 multiplies a 16x32 code tile by an
// 8x64 x tile into 16x16 int32 sums (amx.tile_muli, codes unsigned), stored
// four sub-blocks ahead of the scaling into 16 float accumulators. Calls with fewer than 16 rows keep the vector
// dots of the same kernel.
// AMX-LABEL: func.func @qmatmul_q4_k(
// AMX:         [[XQ:%.*]] = memref.alloc(%{{.*}}) : memref<?x256xi8>
// AMX:         [[XV:%.*]] = memref.alloc(%{{.*}}) : memref<?x64xi8>
// AMX:         [[XDT:%.*]] = memref.alloc(%{{.*}}) : memref<?x8x16xf32>
// AMX:         [[QST:%.*]] = memref.alloc(%{{.*}}) : memref<?x8x16xf32>
// AMX:         "scf.parallel"
// AMX:         }) {qrt.loop = "rows"}
// AMX:         "scf.parallel"
// AMX:           scf.if
// AMX:             [[CODES:%.*]] = memref.alloca() : memref<8x16x32xi8>
// AMX:             [[DOTS:%.*]] = memref.alloca() : memref<4x16x16xi32>
// AMX:             [[ZERO:%.*]] = amx.tile_zero : !amx.tile<16x16xi32>
// AMX-NEXT:        [[A:%.*]] = amx.tile_load [[CODES]][%{{.*}}, %{{.*}}, %{{.*}}] : memref<8x16x32xi8> into !amx.tile<16x32xi8>
// AMX:             [[B:%.*]] = amx.tile_load [[XV]][%{{.*}}, %{{.*}}] : memref<?x64xi8> into !amx.tile<8x64xi8>
// AMX:             [[C:%.*]] = amx.tile_muli [[A]] zext, [[B]], [[ZERO]] : !amx.tile<16x32xi8>, !amx.tile<8x64xi8>, !amx.tile<16x16xi32>
// AMX:             amx.tile_store [[DOTS]][%{{.*}}, %{{.*}}, %{{.*}}], [[C]] : memref<4x16x16xi32>, !amx.tile<16x16xi32>
// AMX:             scf.for
// AMX:               arith.sitofp %{{.*}} : vector<16xi32> to vector<16xf32>
// AMX:               vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<16xf32>
// AMX:           {qrt.loop = "reduction"}
// AMX:           scf.if
// AMX:             qrt.dot_u8i8
// AMX:         }) {qrt.loop = "rows", qrt.gpu_mapping = "warp"}
// AMX:         memref.dealloc [[XV]]

// Scalar (the GPU's): each lane-loop iteration is a chunk of Q4_K's
// gpu_lane_width (16) lanes: its code bytes in one 16-byte aligned load, x
// in aligned vectors, codes to float without a conversion (2^23 + code,
// minus 2^23: exact), scale * sum(q*x) - min * sum(x) per chunk.
// SCALAR-LABEL: func.func @qmatmul_q4_k(
// SCALAR-NOT:     memref.alloc
// SCALAR:         "scf.parallel"
// SCALAR:           scf.for
// SCALAR:             scf.for {{.*}} iter_args
// SCALAR:               vector.load %w[%{{.*}}, %{{.*}}] {qrt.align = 16 : i64} : memref<?x144xi8>, vector<16xi8>
// SCALAR-NOT:           arith.uitofp {{.*}} : vector<16xi8>
// SCALAR:               vector.bitcast %{{.*}} : vector<16xi32> to vector<16xf32>
// SCALAR:               vector.load %x[%{{.*}}, %{{.*}}] {qrt.align = 16 : i64} : memref<?x256xf32>, vector<16xf32>
// SCALAR:               arith.subf
// SCALAR:             } {qrt.loop = "lanes"}
// SCALAR:           } {qrt.loop = "reduction"}
// SCALAR:         }) {qrt.loop = "rows", qrt.gpu_mapping = "warp"}

// -----

// GPTQ qmatmul: zero points are unpacked once into floats; groups of whole
// words factor the zero point out of the inner loop.
func.func @qmatmul_gptq(%x: memref<?x64xf32>, %qw: memref<8x?xi32>, %qz: memref<2x?xi32>, %s: memref<2x?xf16>, %g: memref<64xi32>, %y: memref<?x?xf32>) {
  quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 32, desc_act = false, sym = false, format = gptq> %x, %qw, %qz, %s, %g outs(%y) : (memref<?x64xf32>, memref<8x?xi32>, memref<2x?xi32>, memref<2x?xf16>, memref<64xi32>, memref<?x?xf32>) -> ()
  func.return
}

// CHECK-LABEL: func.func @qmatmul_gptq(
// CHECK:         [[Z:%.*]] = memref.alloc(%{{.*}}) : memref<2x?xf32>
// CHECK:         vector.load %qw[%{{.*}}, %{{.*}}] : memref<8x?xi32>, vector<16xi32>
// CHECK:         vector.fma
// CHECK:         memref.dealloc [[Z]]
// With int8 (the default), x is quantized to int8 blocks of 32 stored in the
// order of the codes' bytes (4 bits: 0, 2, 4, 6, 1, 3, 5, 7 within each word),
// and a qweight row's 16 words are masked into bytes, each 32-bit lane four
// codes of one column, for qrt.dot_u8i8 against a broadcast word of x codes.
// INT8-LABEL: func.func @qmatmul_gptq(
// INT8:         [[Z:%.*]] = memref.alloc(%{{.*}}) : memref<2x?xf32>
// INT8:         [[XQ:%.*]] = memref.alloc(%{{.*}}) : memref<?x64xi8>
// INT8:         vector.shuffle %{{.*}}, %{{.*}} [0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, {{.*}}] : vector<32xi8>, vector<32xi8>
// INT8:         memref.alloca() {alignment = 64 : i64} : memref<4x1024xf32>
// INT8:         [[XW:%.*]] = vector.bitcast %{{.*}} : vector<32xi8> to vector<8xi32>
// INT8:         [[XB:%.*]] = vector.shuffle [[XW]], [[XW]] [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] : vector<8xi32>, vector<8xi32>
// INT8:         [[X0:%.*]] = vector.bitcast [[XB]] : vector<16xi32> to vector<64xi8>
// INT8:         scf.for
// INT8:           qrt.prefetch %qw
// INT8:           [[W:%.*]] = vector.load %qw[%{{.*}}, %{{.*}}] : memref<8x?xi32>, vector<16xi32>
// INT8:           [[LO:%.*]] = arith.andi [[W]], %{{.*}} : vector<16xi32>
// INT8:           [[C0:%.*]] = vector.bitcast [[LO]] : vector<16xi32> to vector<64xi8>
// INT8:           qrt.dot_u8i8 %{{.*}}, [[C0]], [[X0]] {code_bits = 4 : i64} : vector<64xi8> into vector<16xi32>
// INT8:           arith.sitofp %{{.*}} : vector<16xi32> to vector<16xf32>
// INT8:           vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<16xf32>
// INT8:         memref.dealloc [[XQ]]
// INT8:         memref.dealloc [[Z]]

// -----

// quant.gather is the dequantize nest over the rows its indices name: each
// iteration loads its index, widens it to index and clamps it to the last
// row (the runtime refuses bad indices; the clamp keeps the kernel inside
// the table whatever it is given), then unpacks that row's block. Indices of
// rank 2 and the [B, T, K] result are collapsed to 1-D and [B*T, K] first.
func.func @gather_q4_k(%t: memref<32000x144xi8>, %ids: memref<?x?xi64>, %y: memref<?x?x256xf32>) {
  quant.gather #quant.encoding<q4_k> %t, %ids outs(%y) : (memref<32000x144xi8>, memref<?x?xi64>, memref<?x?x256xf32>) -> ()
  func.return
}

// CHECK-LABEL: func.func @gather_q4_k(
// CHECK:         [[IDS:%.*]] = memref.collapse_shape %ids {{\[}}[0 : i64, 1 : i64]] : memref<?x?xi64> into memref<?xi64>
// CHECK:         [[Y:%.*]] = memref.collapse_shape %y {{\[}}[0 : i64, 1 : i64], [2 : i64]] : memref<?x?x256xf32> into memref<?x256xf32>
// CHECK:         [[M:%.*]] = memref.dim [[IDS]], %{{.*}} : memref<?xi64>
// CHECK:         [[LAST:%.*]] = arith.subi %{{.*}}, %{{.*}} : index
// CHECK:         "scf.parallel"(%{{.*}}, %{{.*}}, [[M]],
// CHECK-NEXT:    ^bb0([[I:%.*]]: index, [[B:%.*]]: index):
// CHECK-NEXT:      [[ID:%.*]] = memref.load [[IDS]]{{\[}}[[I]]] : memref<?xi64>
// CHECK-NEXT:      [[ROW:%.*]] = arith.index_cast [[ID]] : i64 to index
// CHECK-NEXT:      [[SRC:%.*]] = arith.minui [[ROW]], [[LAST]] : index
// CHECK:           vector.load %t{{\[}}[[SRC]], %{{.*}}] : memref<32000x144xi8>, vector<2xi8>
// CHECK:           vector.store %{{.*}}, [[Y]]{{\[}}[[I]], %{{.*}}] {nontemporal = true} : memref<?x256xf32>, vector<32xf32>
// CHECK:         }) {qrt.loop = "rows", qrt.gpu_mapping = "lanes"}

// SCALAR-LABEL: func.func @gather_q4_k(
// SCALAR:         "scf.parallel"
// SCALAR:           [[ID:%.*]] = memref.load %{{.*}}[%{{.*}}] : memref<?xi64>
// SCALAR:           arith.minui
// SCALAR:           scf.for
// SCALAR:             memref.load %t[%{{.*}}, %{{.*}}] : memref<32000x144xi8>
// SCALAR:             memref.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}] : memref<?x256xf32>
// SCALAR:           } {qrt.loop = "lanes"}
// SCALAR:         }) {qrt.loop = "rows", qrt.gpu_mapping = "lanes"}

// -----

// A 1-D i32 gather over a table of dynamic rows: the clamp bound comes from
// the table's dimension 0; equal gathers are lowered once and cloned.
func.func @gather_q8_0_twice(%t: memref<?x34xi8>, %a: memref<?xi32>, %b: memref<?xi32>, %ya: memref<?x32xf32>, %yb: memref<?x32xf32>) {
  quant.gather #quant.encoding<q8_0> %t, %a outs(%ya) : (memref<?x34xi8>, memref<?xi32>, memref<?x32xf32>) -> ()
  quant.gather #quant.encoding<q8_0> %t, %b outs(%yb) : (memref<?x34xi8>, memref<?xi32>, memref<?x32xf32>) -> ()
  func.return
}

// CHECK-LABEL: func.func @gather_q8_0_twice(
// CHECK:         [[N:%.*]] = memref.dim %t, %{{.*}} : memref<?x34xi8>
// CHECK:         arith.subi [[N]], %{{.*}} : index
// CHECK:         "scf.parallel"
// CHECK:           memref.load %a[%{{.*}}] : memref<?xi32>
// CHECK:           arith.index_cast %{{.*}} : i32 to index
// CHECK:           vector.store %{{.*}}, %ya[%{{.*}}, %{{.*}}]
// CHECK:         "scf.parallel"
// CHECK:           memref.load %b[%{{.*}}] : memref<?xi32>
// CHECK:           vector.store %{{.*}}, %yb[%{{.*}}, %{{.*}}]

// -----

// Q2_K and Q3_K on the integer-dot path sum each block in integers: x takes one
// scale per block of 256 (max over the block) and stores its runs of 32 in the
// order the dots read them (runs 0, 4, 1, 5, ...: run j next to run j + 4); each
// dot multiplies 64 codes unpacked from one 64-byte load with 64 bytes of x,
// scaled per lane by the sub-block scales as 16-bit integers (a byte next to its
// sign byte); one conversion and one FMA by d times x's scale per block.
func.func @qmatmul_q2_k(%x: memref<?x256xf32>, %w: memref<?x84xi8>, %y: memref<?x?xf32>) {
  quant.qmatmul #quant.encoding<q2_k> %x, %w outs(%y) : (memref<?x256xf32>, memref<?x84xi8>, memref<?x?xf32>) -> ()
  func.return
}

// INT8-LABEL: func.func @qmatmul_q2_k(
// INT8:         vector.reduction <maximumf>, %{{.*}} : vector<256xf32> into f32
// INT8:         vector.store %{{.*}}, [[XQ:%.*]][%{{.*}}, %{{.*}}] : memref<?x256xi8>, vector<32xi8>
// INT8:         scf.for
// INT8:           [[PAIRS:%.*]] = vector.shuffle %{{.*}}, %{{.*}} [0, 16, 1, 17, {{.*}}] : vector<16xi8>, vector<16xi8>
// INT8:           [[WORDS:%.*]] = vector.bitcast [[PAIRS]] : vector<32xi8> to vector<16xi16>
// INT8:           [[QS:%.*]] = vector.load %w[%{{.*}}, %{{.*}}] : memref<?x84xi8>, vector<64xi8>
// INT8:           [[C0:%.*]] = arith.andi [[QS]], %{{.*}} : vector<64xi8>
// INT8:           [[S0:%.*]] = vector.shuffle [[WORDS]], [[WORDS]] [0, 0, 0, 0, 1, 1, 1, 1, 8, 8, 8, 8, 9, 9, 9, 9] : vector<16xi16>, vector<16xi16>
// INT8:           [[X0:%.*]] = vector.load [[XQ]][%{{.*}}, %{{.*}}] : memref<?x256xi8>, vector<64xi8>
// INT8-NEXT:      [[D0:%.*]] = qrt.dot_u8i8_scaled %{{.*}}, [[C0]], [[X0]], [[S0]] {code_bits = 2 : i64} : vector<64xi8>, vector<16xi16> into vector<16xi32>
// INT8:           arith.shrui %{{.*}}, %{{.*}} : vector<64xi8>
// INT8:           vector.shuffle [[WORDS]], [[WORDS]] [2, 2, 2, 2, 3, 3, 3, 3, 10, 10, 10, 10, 11, 11, 11, 11]
// INT8:           qrt.dot_u8i8_scaled [[D0]], %{{.*}}, %{{.*}}, %{{.*}} {code_bits = 2 : i64}
// INT8:           arith.sitofp %{{.*}} : vector<16xi32> to vector<16xf32>
// INT8-NEXT:      vector.fma
