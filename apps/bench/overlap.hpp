// sparcol-bench --overlap (docs/bench.md, "Communication behind computation"): how much of a ring
// all-reduce a progress thread (coll::Background) hides behind computation of the same length.
#pragma once

#include "bench/options.hpp"

namespace sparcol::bench {

// For every size of the sweep: the blocking ring all-reduce alone (t_ar), a compute loop calibrated
// to the same length (t_comp), both one after the other (t_seq), the all-reduce started on the
// progress thread before the compute loop and waited for after it (t_ovl), and the background
// all-reduce waited for at once (t_bg: what the thread costs when nothing overlaps). Medians over -n
// runs of the slowest rank; hidden = (t_seq - t_ovl) / t_ar. The result is checked bitwise against
// the blocking all-reduce. Rank 0 prints the table. Returns the number of wrong elements.
std::int64_t run_overlap(Backend& b, const Config& c);

}  // namespace sparcol::bench
