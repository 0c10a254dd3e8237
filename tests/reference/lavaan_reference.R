# lavaan reference values for alliance.models.sem (dynamic panel model, RI-CLPM).
#
# Run from the repository root after `python tests/reference/make_sem_data.py`:
#     Rscript tests/reference/lavaan_reference.R
# Writes tests/reference/lavaan_sem.json. The models are written out in
# tests/reference/lavaan_panel_models.R from their papers, independently of the Python
# parameter tables (DPM: Allison, Williams & Moral-Benito, 2017; RI-CLPM: Hamaker, Kuiper
# & Grasman, 2015). Estimation: missing = "fiml" (ML), fixed.x = FALSE, observed
# information (lavaan's default for FIML). Fit measures: lavaan_fit_measures.R.
suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})
source("tests/reference/lavaan_panel_models.R")

wide <- read.csv("tests/reference/data/sem_panel_wide.csv")
T <- 6L

fit_one <- function(syntax) {
  fit <- best_fit(syntax, wide)
  pe <- parameterEstimates(fit, standardized = TRUE)
  pe <- pe[, c("lhs", "op", "rhs", "label", "est", "se", "std.all")]
  list(
    loglik = as.numeric(logLik(fit)),
    npar = as.integer(fitMeasures(fit, "npar")),
    nobs = as.integer(lavInspect(fit, "nobs")),
    converged = lavInspect(fit, "converged"),
    local_maxima = as.list(attr(fit, "local_maxima")),
    params = pe
  )
}

out <- list(
  lavaan_version = as.character(packageVersion("lavaan")),
  data = "tests/reference/data/sem_panel_wide.csv",
  dpm = fit_one(dpm_syntax(T)),
  dpm_slopes = fit_one(dpm_syntax(T, slopes = TRUE)),
  riclpm = fit_one(riclpm_syntax(T))
)
write_json(out, "tests/reference/lavaan_sem.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE, na = "null")
cat("wrote tests/reference/lavaan_sem.json\n")
