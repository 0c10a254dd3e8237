# Time lavaan on the same dynamic panel model as the default within_between fit (issue 16).
#
# Called by benchmarks/bench_dpm.py with the wide data file and the number of waves:
#     Rscript benchmarks/bench_dpm_lavaan.R WIDE.csv T
# The model is tests/reference/lavaan_panel_models.R's dpm_syntax(T, slopes = TRUE)
# (y = outcome, x = alliance), estimated as the lavaan references are: missing = "fiml",
# fixed.x = FALSE, observed information. Prints one JSON line: the elapsed seconds of
# one lavaan() fit from its default start, of fitMeasures() on it (lavaan's EM for the
# unrestricted model), of best_fit() (the references' 4 starts), and the log-likelihood.
suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})
source("tests/reference/lavaan_panel_models.R")
args <- commandArgs(trailingOnly = TRUE)
wide <- read.csv(args[1])
T <- as.integer(args[2])
syntax <- dpm_syntax(T, slopes = TRUE)
fit_once <- function() {
  lavaan(syntax, data = wide, missing = "fiml", fixed.x = FALSE, meanstructure = TRUE,
         information = "observed")
}
fit <- fit_once()  # warm-up
reps <- 3L
one <- replicate(reps, system.time(fit <<- fit_once())[["elapsed"]])
fm <- replicate(reps, system.time(fitMeasures(fit_once(), c("chisq", "cfi", "rmsea", "srmr")))[["elapsed"]])
best <- system.time(bf <- best_fit(syntax, wide))[["elapsed"]]
cat(toJSON(list(
  lavaan_version = as.character(packageVersion("lavaan")),
  fit_seconds = one, fit_and_fitmeasures_seconds = fm, best_fit_4_starts_seconds = best,
  loglik = as.numeric(logLik(fit)), best_loglik = as.numeric(logLik(bf)),
  converged = lavInspect(fit, "converged")
), auto_unbox = TRUE, digits = 10), "\n")
