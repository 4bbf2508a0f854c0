#pragma once
// slitstep/core: fixed quadrature rules shared by the numerical kernels.
namespace slitstep {

/// 8-point Gauss-Legendre nodes and weights on [-1, 1] (exact for polynomials of degree <= 15).
inline constexpr double kGaussLegendre8X[8] = {-0.9602898564975363, -0.7966664774136267, -0.5255324099163290,
                                               -0.1834346424956498, 0.1834346424956498,  0.5255324099163290,
                                               0.7966664774136267,  0.9602898564975363};
inline constexpr double kGaussLegendre8W[8] = {0.1012285362903763, 0.2223810344533745, 0.3137066458778873,
                                               0.3626837833783620, 0.3626837833783620, 0.3137066458778873,
                                               0.2223810344533745, 0.1012285362903763};

}  // namespace slitstep
