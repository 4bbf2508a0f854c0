#pragma once
// slitstep/analysis: a paper-style text table of one galaxy's analysis (MSA-3D Table 1 / Fig. A1
// numbers: metallicity gradient with error, RMSE, number of star-forming spaxels, v_c, sigma_0,
// v_c/sigma_0). Returns text; never prints.
#include <string>

#include "analysis/pipeline.hpp"

namespace slitstep {

/// A few lines: a header row, one row for the galaxy `name` at redshift `z`, then the geometry
/// and the status (and any notes). NaN values print as "--".
std::string format_analysis_table(const AnalysisSummary& s, const std::string& name, double z);

}  // namespace slitstep
