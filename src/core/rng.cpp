#include "sparcol/core/rng.hpp"

#include <cmath>
#include <numbers>

namespace sparcol {

double CounterRng::normal() {
  // Box-Muller from two uniforms; u1 in (0, 1] so the log is finite. Uses exactly two draws, so the
  // counter advances predictably (checkpoints stay simple).
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace sparcol
