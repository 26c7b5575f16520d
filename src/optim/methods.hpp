// Internal: constructors of the optimizer classes, one family per source file.
#pragma once

#include <memory>

#include "sparcol/optim/optimizer.hpp"

namespace sparcol::optim::detail {

std::unique_ptr<Optimizer> make_dmsgd(comm::Backend& b, const Layout& l, const OptimConfig& c, bool local);
std::unique_ptr<Optimizer> make_ef_sgd(comm::Backend& b, const Layout& l, const OptimConfig& c, bool momentum);
std::unique_ptr<Optimizer> make_dgc(comm::Backend& b, const Layout& l, const OptimConfig& c, bool mfm);
std::unique_ptr<Optimizer> make_gmc(comm::Backend& b, const Layout& l, const OptimConfig& c, bool plus);
std::unique_ptr<Optimizer> make_def_a(comm::Backend& b, const Layout& l, const OptimConfig& c);
std::unique_ptr<Optimizer> make_cser(comm::Backend& b, const Layout& l, const OptimConfig& c);

// Exchange configuration that sends everything densely (DMSGD, and CSER's verdict-only exchange).
ExchangeConfig dense_exchange(const ExchangeConfig& base);

}  // namespace sparcol::optim::detail
