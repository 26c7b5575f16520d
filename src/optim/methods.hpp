// Internal: constructors of the optimizer classes, one family per source file.
#pragma once

#include <memory>

#include "sparcol/optim/optimizer.hpp"

namespace sparcol::optim::detail {

using device::Exec;

std::unique_ptr<Optimizer> make_dmsgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e,
                                      bool local);
std::unique_ptr<Optimizer> make_ef_sgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e,
                                       bool momentum);
std::unique_ptr<Optimizer> make_dgc(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e,
                                    bool mfm);
std::unique_ptr<Optimizer> make_gmc(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e,
                                    bool plus);
std::unique_ptr<Optimizer> make_def_a(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e);
std::unique_ptr<Optimizer> make_cser(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e);
std::unique_ptr<Optimizer> make_liec(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e);
std::unique_ptr<Optimizer> make_powersgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e);
// marsit (cascade false) and sign-cascade (cascade true): src/optim/marsit.cpp.
std::unique_ptr<Optimizer> make_sign_ring(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e,
                                          bool cascade);
std::unique_ptr<Optimizer> make_cocod_sgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e);
std::unique_ptr<Optimizer> make_local_sgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e);
std::unique_ptr<Optimizer> make_dpsgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e);
std::unique_ptr<Optimizer> make_relaysgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e);
std::unique_ptr<Optimizer> make_powergossip(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e);
// a2cid2 and async-gossip: src/optim/a2cid2.cpp.
std::unique_ptr<Optimizer> make_async_gossip(comm::Backend& b, const Layout& l, const OptimConfig& c,
                                             Exec& e);

// The error-feedback family's update: x <- x - a (the aggregate is in parameter units), or with
// wd_outside x <- x - (a + eta*wd*x).
inline void apply_error_feedback_update(Exec& ex, std::span<float> x, const Aggregate& a, double lr,
                                        const OptimConfig& c) {
  if (c.wd_outside) {
    device::dispatch::apply_update(ex, x.data(), a.data(), 1.0f, static_cast<float>(lr * c.weight_decay),
                                   x.size());
  } else {
    apply_aggregate(ex, x.data(), a, 1.0f);
  }
}

// Exchange configuration that sends everything densely (DMSGD, and CSER's verdict-only exchange).
ExchangeConfig dense_exchange(const ExchangeConfig& base);

}  // namespace sparcol::optim::detail
