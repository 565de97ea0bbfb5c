// Probes of what the machine can do, to judge measured speeds against: DRAM read bandwidth,
// fp32 FMA throughput, and the process's peak resident memory. Not a benchmark of the model.
#pragma once
#include <cstddef>
#include <string>

namespace rwkv::perf {

// Read bandwidth from memory in GB/s (1e9 bytes/s): `threads` threads (std::thread when more
// than one) each sum their share of a `bytes` buffer; each of `runs` runs is a plain pass and
// a pass that asks for each line 1 KiB ahead (as the weight kernels do), the best pass kept.
// The buffer must be much larger than the last-level cache for this to measure DRAM (1 GiB by
// default).
double read_bandwidth_gb_s(int threads, size_t bytes = size_t(1) << 30, int runs = 3);

// The same probe run in a child process (fork), so that this process's peak resident memory
// does not take in the buffer: for readings between the measurements it is set against.
// 0 where no reading could be taken (no child, or the child failed).
double read_bandwidth_gb_s_in_child(int threads, size_t bytes = size_t(1) << 30, int runs = 1);

// fp32 multiply-add throughput in GFLOP/s (an FMA counts 2): each of `threads` threads runs a
// loop of independent FMAs held in registers, with the widest vector unit the CPU has (see
// fma_isa); the best of `runs` passes.
double fma_peak_gflop_s(int threads, int runs = 3);
// The instruction set fma_peak_gflop_s uses here: "avx512f", "avx2+fma" or "scalar".
std::string fma_isa();

// Peak resident set size of this process so far, in bytes (getrusage ru_maxrss).
size_t peak_rss_bytes();

// Bytes of this process now resident on 2 MB pages (anonymous and file-backed: AnonHugePages,
// FilePmdMapped and ShmemPmdMapped of /proc/self/smaps_rollup); 0 where the system does not say.
size_t huge_page_bytes();

}  // namespace rwkv::perf
