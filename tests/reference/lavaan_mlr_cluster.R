# lavaan references for the robust (MLR) standard errors and scaled chi-square of the panel
# models of alliance.models.sem, clustered by therapist.
#
# Run from the repository root (after `python tests/reference/make_sem_data.py`):
#     Rscript tests/reference/lavaan_mlr_cluster.R
# Writes tests/reference/lavaan_mlr_cluster.json. Same data, models and best-of-starts rule
# as lavaan_reference.R (tests/reference/lavaan_panel_models.R); the clients' therapists are
# tests/reference/data/sem_panel_therapists.csv (20 therapists, 10 clients each).
# Estimation: estimator = "MLR", missing = "ml" (FIML), fixed.x = FALSE, cluster =
# "therapist" (lavaan 0.6: se = "robust.cluster", test = "yuan.bentler.mplus", observed
# information from the Hessian, first-order "meat" from the casewise scores summed within
# therapists times nC / (nC - 1)). The estimates are the ML estimates. The scaled test needs
# the unrestricted (H1) moments, which lavaan's EM computes with em.h1.tol = 1e-5 by default;
# as in lavaan_fit_measures.R the fits are repeated with the EM run to convergence
# ("converged_h1"), the values the Python results are held to. "mlr_no_cluster" is the DPM
# with estimator = "MLR" and no cluster (clients are the independent units).
suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})
source("tests/reference/lavaan_panel_models.R")

wide <- read.csv("tests/reference/data/sem_panel_wide.csv")
th <- read.csv("tests/reference/data/sem_panel_therapists.csv")
wide$therapist <- th$therapist[match(wide$client, th$client)]
stopifnot(!anyNA(wide$therapist))
T <- 6L
measures <- c("npar", "ntotal", "logl", "unrestricted.logl", "chisq", "df", "pvalue",
              "chisq.scaled", "df.scaled", "pvalue.scaled", "chisq.scaling.factor")

mlr <- function(syntax, how, cluster, ...) {
  args <- list(model = syntax, data = wide, missing = "ml", fixed.x = FALSE,
               meanstructure = TRUE, estimator = "MLR", start = how[["start"]],
               optim.method = how[["optim.method"]], ...)
  if (!is.null(cluster)) args$cluster <- cluster
  suppressWarnings(do.call(lavaan, args))
}

one <- function(syntax, cluster = "therapist") {
  ml <- best_fit(syntax, wide)
  how <- attr(ml, "how")
  fit <- mlr(syntax, how, cluster)
  tight <- mlr(syntax, how, cluster, em.h1.tol = 1e-11, em.h1.iter.max = 1000000L)
  pe <- parameterEstimates(tight)
  opts <- lavInspect(tight, "options")
  list(
    start = how[["start"]], optim.method = how[["optim.method"]],
    cluster = if (is.null(cluster)) NA else cluster,
    se = opts$se, test = opts$test,
    loglik = as.numeric(logLik(tight)),
    default = as.list(fitMeasures(fit, measures)),
    converged_h1 = as.list(fitMeasures(tight, measures)),
    params = pe[, c("lhs", "op", "rhs", "label", "est", "se")]
  )
}

out <- list(
  lavaan_version = as.character(packageVersion("lavaan")),
  data = "tests/reference/data/sem_panel_wide.csv",
  clusters = "tests/reference/data/sem_panel_therapists.csv",
  dpm = one(dpm_syntax(T)),
  dpm_slopes = one(dpm_syntax(T, slopes = TRUE)),
  riclpm = one(riclpm_syntax(T)),
  mlr_no_cluster = one(dpm_syntax(T), cluster = NULL)
)
write_json(out, "tests/reference/lavaan_mlr_cluster.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE, na = "null")
cat("wrote tests/reference/lavaan_mlr_cluster.json\n")
