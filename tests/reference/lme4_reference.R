# Reference values for alliance.models.lmm, computed with lme4 + lmerTest.
#
# Run from the repository root:
#   python tests/reference/make_lmm_data.py   # (re)make the CSV data
#   Rscript tests/reference/lme4_reference.R  # write tests/reference/lme4_*.json
#
# lme4 is run with bobyqa at tight tolerances so that the references are converged
# well past the tolerances the tests use.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

here <- "tests/reference"
ctrl <- lmerControl(
  optimizer = "bobyqa",
  optCtrl = list(maxfun = 1e5, rhobeg = 0.2, rhoend = 1e-12),
  check.conv.singular = "ignore"
)

read_data <- function(name) {
  d <- read.csv(file.path(here, "data", paste0(name, ".csv")), stringsAsFactors = FALSE)
  d$prior <- factor(d$prior, levels = c("no", "yes"))
  d
}

designs <- list(
  list(name = "intercept", data = "lmm_main", reml = TRUE,
       formula = "phq9 ~ alliance_within + alliance_between + session + prior + (1 | client)"),
  list(name = "slope", data = "lmm_main", reml = TRUE,
       formula = "phq9 ~ alliance_within + alliance_between + session + (1 + session | client)"),
  list(name = "nested", data = "lmm_main", reml = TRUE,
       formula = paste("phq9 ~ alliance_within + alliance_between + session + prior +",
                       "(1 + session | client) + (1 | therapist)")),
  list(name = "nested_ml", data = "lmm_main", reml = FALSE,
       formula = paste("phq9 ~ alliance_within + alliance_between + session + prior +",
                       "(1 + session | client) + (1 | therapist)")),
  list(name = "site", data = "lmm_main", reml = TRUE,
       formula = paste("phq9 ~ alliance_within + alliance_between + session + prior +",
                       "(1 + session | client) + (1 | therapist) + (1 | site)")),
  list(name = "therapist_slope", data = "lmm_main", reml = TRUE,
       formula = paste("phq9 ~ alliance_within + alliance_between + session +",
                       "(1 + session | client) + (1 + session | therapist)")),
  list(name = "interaction", data = "lmm_main", reml = TRUE,
       formula = paste("phq9 ~ alliance_within * prior + alliance_between + session +",
                       "I(session^2) + (1 | client) + (1 | therapist)")),
  list(name = "uncorrelated", data = "lmm_main", reml = TRUE,
       formula = "phq9 ~ alliance_within + session + (1 + session || client) + (1 | therapist)"),
  list(name = "boundary", data = "lmm_boundary", reml = TRUE,
       formula = "phq9 ~ alliance_within + session + (1 + session | client) + (1 | therapist)"),
  list(name = "boundary_slope", data = "lmm_boundary_slope", reml = TRUE,
       formula = "phq9 ~ alliance_within + session + (1 + session | client) + (1 | therapist)")
)

for (d in designs) {
  data <- read_data(d$data)
  fit <- lmer(as.formula(d$formula), data = data, REML = d$reml, control = ctrl)
  # polish: restart from the optimum with a second optimizer, keep the better of the two
  fit2 <- update(fit, start = getME(fit, "theta"),
                 control = lmerControl(optimizer = "Nelder_Mead",
                                       optCtrl = list(maxfun = 1e5, FtolAbs = 1e-14,
                                                      FtolRel = 1e-15, XtolRel = 1e-12),
                                       check.conv.singular = "ignore"))
  if (deviance(fit2, REML = d$reml) < deviance(fit, REML = d$reml)) fit <- fit2
  coefs <- summary(fit, ddf = "Satterthwaite")$coefficients
  vc <- as.data.frame(VarCorr(fit))
  vc$var1[is.na(vc$var1)] <- ""
  vc$var2[is.na(vc$var2)] <- ""
  re <- lapply(ranef(fit), function(r) {
    list(levels = rownames(r), terms = colnames(r), values = unname(as.matrix(r)))
  })
  out <- list(
    name = d$name,
    data = paste0("data/", d$data, ".csv"),
    formula = d$formula,
    reml = d$reml,
    nobs = nobs(fit),
    ngroups = as.list(ngrps(fit)),
    fixef = list(
      term = rownames(coefs),
      estimate = unname(coefs[, "Estimate"]),
      se = unname(coefs[, "Std. Error"]),
      df = unname(coefs[, "df"]),
      t = unname(coefs[, "t value"]),
      p = unname(coefs[, "Pr(>|t|)"])
    ),
    vcov = unname(as.matrix(vcov(fit))),
    varcorr = list(grp = vc$grp, var1 = vc$var1, var2 = vc$var2,
                   vcov = vc$vcov, sdcor = vc$sdcor),
    sigma = sigma(fit),
    theta = unname(getME(fit, "theta")),
    loglik = as.numeric(logLik(fit)),
    aic = AIC(fit),
    bic = BIC(fit),
    singular = isSingular(fit, tol = 1e-4),
    ranef = re,
    versions = list(R = R.version.string,
                    lme4 = as.character(packageVersion("lme4")),
                    lmerTest = as.character(packageVersion("lmerTest")))
  )
  path <- file.path(here, paste0("lme4_", d$name, ".json"))
  write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), path)
  cat(sprintf("%-16s loglik %.8f singular %s\n", d$name, out$loglik, out$singular))
}
