// RUN: quantir-opt %s --split-input-file -p convert-qrt-to-upstream | filecheck %s

// A CPU launch becomes an scf.parallel over its range whose iteration i calls
// the kernel on [i, i + 1); a check becomes cf.assert; the weight argument's
// encoding becomes a string.
func.func @host(%x: memref<?x64xf32> {qrt.input = 0 : i64}, %w: memref<8x72xi8> {quant.weight = "w", quant.encoding = #quant.encoding<q4_0>, quant.shape = array<i64: 8, 128>}, %y: memref<?x64xf32> {qrt.output = 0 : i64}) {
  %c0 = arith.constant 0 : index
  %n = memref.dim %x, %c0 : memref<?x64xf32>
  %m = memref.dim %y, %c0 : memref<?x64xf32>
  %ok = arith.cmpi eq, %n, %m : index
  qrt.check %ok, "dimension 0 differs"
  qrt.launch @host_kernel0(%x, %y) range(%n) : memref<?x64xf32>, memref<?x64xf32>
  func.return
}
func.func @host_kernel0(%lo: index, %hi: index, %x: memref<?x64xf32>, %y: memref<?x64xf32>) attributes {qrt.kernel} {
  func.return
}

// CHECK-LABEL: func.func @host(
// CHECK-SAME:    %w: memref<8x72xi8> {quant.weight = "w", quant.encoding = "q4_0", quant.shape = array<i64: 8, 128>}
// CHECK:         cf.assert %{{.*}}, "dimension 0 differs"
// CHECK:         [[C0:%.*]] = arith.constant 0 : index
// CHECK-NEXT:    [[C1:%.*]] = arith.constant 1 : index
// CHECK-NEXT:    "scf.parallel"([[C0]], %n, [[C1]])
// CHECK-NEXT:    ^bb0([[I:%.*]]: index):
// CHECK-NEXT:      [[I1:%.*]] = arith.addi [[I]], [[C1]] : index
// CHECK-NEXT:      func.call @host_kernel0([[I]], [[I1]], %x, %y) : (index, index, memref<?x64xf32>, memref<?x64xf32>) -> ()
// CHECK-NEXT:      scf.reduce
// CHECK-NEXT:    }) {qrt.launch = {}} : (index, index, index) -> ()
// CHECK-NOT:     qrt.launch @
// CHECK-NOT:     qrt.check

// -----

// A GPU launch: one iteration per thread, each running the kernel on the
// whole range; the grid's shape rides in the qrt.launch dictionary. A GPTQ
// config becomes a dictionary of builtin attributes.
func.func @gpu(%qw: memref<16x32xi32> {quant.weight = "g", quant.weight_part = "qweight", quant.encoding = #quant.encoding<gptq>, quant.shape = array<i64: 32, 128>, quant.config = #quant.gptq<bits = 4, group_size = 128, desc_act = false, sym = true, format = gptq>}, %t: index) {
  qrt.launch @gpu_kernel0(%qw) range(%t) {threads_per_block = 256 : i64, items_per_block = 128 : i64} : memref<16x32xi32>
  func.return
}
func.func @gpu_kernel0(%lo: index, %hi: index, %qw: memref<16x32xi32>) attributes {qrt.kernel} {
  func.return
}

// CHECK-LABEL: func.func @gpu(
// CHECK-SAME:    quant.encoding = "gptq"
// CHECK-SAME:    quant.config = {bits = 4 : i64, group_size = 128 : i64, desc_act = false, sym = true, format = "gptq"}
// CHECK:         [[C0:%.*]] = arith.constant 0 : index
// CHECK:         "scf.parallel"([[C0]], %t, %{{.*}})
// CHECK:           func.call @gpu_kernel0([[C0]], %t, %qw) : (index, index, memref<16x32xi32>) -> ()
// CHECK:         }) {qrt.launch = {threads_per_block = 256 : i64, items_per_block = 128 : i64}}

// -----

// Kernel-level ops: prefetch, warp reduction, byte dot products.
func.func @ops(%w: memref<?x144xi8>, %i: index, %p: f32, %acc: vector<8xi32>, %c: vector<32xi8>, %v: vector<32xi8>) -> (f32, vector<8xi32>) {
  qrt.prefetch %w[%i, %i] : memref<?x144xi8>
  %s = qrt.warp_reduce %p : f32
  %d = qrt.dot_u8i8 %acc, %c, %v {code_bits = 4 : i64} : vector<32xi8> into vector<8xi32>
  func.return %s, %d : f32, vector<8xi32>
}

// CHECK-LABEL: func.func @ops(
// CHECK-NEXT:    memref.prefetch %w[%i, %i], read, locality<3>, data : memref<?x144xi8>
// CHECK-NEXT:    [[S:%.*]] = gpu.subgroup_reduce add %p uniform : (f32) -> f32
// CHECK-NEXT:    [[CW:%.*]] = arith.extui %c : vector<32xi8> to vector<32xi32>
// CHECK-NEXT:    [[VW:%.*]] = arith.extsi %v : vector<32xi8> to vector<32xi32>
// CHECK-NEXT:    [[P:%.*]] = arith.muli [[CW]], [[VW]] : vector<32xi32>
// CHECK-NEXT:    [[P0:%.*]] = vector.shuffle [[P]], [[P]] [0, 4, 8, 12, 16, 20, 24, 28] : vector<32xi32>, vector<32xi32>
// CHECK-NEXT:    [[A0:%.*]] = arith.addi %acc, [[P0]] : vector<8xi32>
// CHECK-NEXT:    [[P1:%.*]] = vector.shuffle [[P]], [[P]] [1, 5, 9, 13, 17, 21, 25, 29]
// CHECK-NEXT:    [[A1:%.*]] = arith.addi [[A0]], [[P1]] : vector<8xi32>
// CHECK-NEXT:    [[P2:%.*]] = vector.shuffle [[P]], [[P]] [2, 6, 10, 14, 18, 22, 26, 30]
// CHECK-NEXT:    [[A2:%.*]] = arith.addi [[A1]], [[P2]] : vector<8xi32>
// CHECK-NEXT:    [[P3:%.*]] = vector.shuffle [[P]], [[P]] [3, 7, 11, 15, 19, 23, 27, 31]
// CHECK-NEXT:    [[D:%.*]] = arith.addi [[A2]], [[P3]] {qrt.dot_u8i8 = {code_bits = 4 : i64}} : vector<8xi32>
// CHECK-NEXT:    func.return [[S]], [[D]] : f32, vector<8xi32>

// -----

// A scaled dot: the dot's form from a zero accumulator (marked as a dot), times
// the sign-extended scales, added to the accumulator by the marked arith.addi.
func.func @scaled(%acc: vector<8xi32>, %c: vector<32xi8>, %v: vector<32xi8>, %s: vector<8xi16>) -> vector<8xi32> {
  %d = qrt.dot_u8i8_scaled %acc, %c, %v, %s {code_bits = 3 : i64} : vector<32xi8>, vector<8xi16> into vector<8xi32>
  func.return %d : vector<8xi32>
}

// CHECK-LABEL: func.func @scaled(
// CHECK-NEXT:    [[Z:%.*]] = arith.constant dense<0> : vector<8xi32>
// CHECK-NEXT:    [[CW:%.*]] = arith.extui %c : vector<32xi8> to vector<32xi32>
// CHECK-NEXT:    [[VW:%.*]] = arith.extsi %v : vector<32xi8> to vector<32xi32>
// CHECK-NEXT:    [[P:%.*]] = arith.muli [[CW]], [[VW]] : vector<32xi32>
// CHECK-NEXT:    [[P0:%.*]] = vector.shuffle [[P]], [[P]] [0, 4, 8, 12, 16, 20, 24, 28]
// CHECK-NEXT:    [[A0:%.*]] = arith.addi [[Z]], [[P0]] : vector<8xi32>
// CHECK:         [[DOT:%.*]] = arith.addi %{{.*}}, %{{.*}} {qrt.dot_u8i8 = {code_bits = 3 : i64}} : vector<8xi32>
// CHECK-NEXT:    [[SW:%.*]] = arith.extsi %s : vector<8xi16> to vector<8xi32>
// CHECK-NEXT:    [[M:%.*]] = arith.muli [[DOT]], [[SW]] : vector<8xi32>
// CHECK-NEXT:    [[R:%.*]] = arith.addi %acc, [[M]] {qrt.dot_u8i8_scaled = {code_bits = 3 : i64}} : vector<8xi32>
// CHECK-NEXT:    func.return [[R]] : vector<8xi32>
