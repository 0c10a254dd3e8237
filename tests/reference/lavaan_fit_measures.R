# lavaan fit measures of the panel models of alliance.models.sem (fitMeasures, ML, FIML).
#
# Run from the repository root:
#     Rscript tests/reference/lavaan_fit_measures.R
# Writes tests/reference/lavaan_fit_measures.json. Same data, models and best-of-starts
# rule as lavaan_reference.R (tests/reference/lavaan_panel_models.R). Under
# missing = "ml" lavaan's chi-square is 2 (logl_H1 - logl_H0), where H1 is the unrestricted
# (saturated means and covariances) model fitted by EM; the baseline is the independence
# model (free means and variances); the SRMR (srmr = srmr_bentler with means) compares the
# model-implied moments with the H1 moments. lavaan's default EM stops when no moment moves
# by more than em.h1.tol = 1e-5, which can leave logl_H1 short of its maximum; the models
# are therefore fitted twice: with lavaan's defaults ("default") and with the EM run to
# convergence (em.h1.tol = 1e-11, em.h1.iter.max = 1e6: "converged_h1"), the values the
# Python fit measures are held to (on these data the two agree).
suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})
source("tests/reference/lavaan_panel_models.R")

wide <- read.csv("tests/reference/data/sem_panel_wide.csv")
T <- 6L
measures <- c("npar", "ntotal", "logl", "unrestricted.logl", "chisq", "df", "pvalue",
              "baseline.chisq", "baseline.df", "baseline.pvalue", "cfi", "tli", "rmsea",
              "rmsea.ci.lower", "rmsea.ci.upper", "rmsea.pvalue", "srmr")

one <- function(syntax) {
  fit <- best_fit(syntax, wide)
  how <- attr(fit, "how")
  tight <- lavaan(syntax, data = wide, missing = "fiml", fixed.x = FALSE,
                  meanstructure = TRUE, information = "observed",
                  start = how[["start"]], optim.method = how[["optim.method"]],
                  em.h1.tol = 1e-11, em.h1.iter.max = 1000000L)
  h1 <- lavInspect(tight, "sampstat.h1")
  list(
    start = how[["start"]], optim.method = how[["optim.method"]],
    default = as.list(fitMeasures(fit, measures)),
    converged_h1 = as.list(fitMeasures(tight, measures)),
    h1_mean = as.numeric(h1$mean),
    h1_cov = unname(as.matrix(h1$cov))
  )
}

out <- list(
  lavaan_version = as.character(packageVersion("lavaan")),
  data = "tests/reference/data/sem_panel_wide.csv",
  dpm = one(dpm_syntax(T)),
  dpm_slopes = one(dpm_syntax(T, slopes = TRUE)),
  riclpm = one(riclpm_syntax(T))
)
write_json(out, "tests/reference/lavaan_fit_measures.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE, na = "null")
cat("wrote tests/reference/lavaan_fit_measures.json\n")
