# Reference values for alliance.models.dropout_model(engine = "glmm"), from lme4's glmer.
#
# Run from the repository root (after python tests/reference/make_dropout_glmm_data.py):
#   Rscript tests/reference/dropout_glmm_reference.R
# Writes tests/reference/glmer_dropout.json. As in glmer_reference.R the fits use
# tolPwrss = 1e-12 (the exact Laplace objective) and a polishing restart with bobyqa.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
here <- "tests/reference"
TOL <- 1e-12
fit_one <- function(f, d) {
  m <- glmer(f, data = d, family = binomial, control = glmerControl(tolPwrss = TOL))
  m2 <- tryCatch(update(m, start = list(theta = getME(m, "theta"), fixef = fixef(m)),
                        control = glmerControl(optimizer = "bobyqa", tolPwrss = TOL,
                                               optCtrl = list(maxfun = 1e5, rhoend = 1e-10))),
                 error = function(e) m)
  if (logLik(m2) > logLik(m)) m2 else m
}
dump <- function(m, f, file) {
  co <- summary(m)$coefficients
  vc <- as.data.frame(VarCorr(m))
  list(data = file, formula = paste(deparse(f), collapse = " "), nobs = nobs(m),
       ngroups = as.list(ngrps(m)),
       fixef = list(term = rownames(co), estimate = unname(co[, 1]), se = unname(co[, 2]),
                    z = unname(co[, 3]), p = unname(co[, 4])),
       varcorr = list(grp = vc$grp, vcov = vc$vcov, sdcor = vc$sdcor),
       loglik = as.numeric(logLik(m)), aic = AIC(m), bic = BIC(m), singular = isSingular(m))
}
cc <- c(client = "character", therapist = "character")
lg <- read.csv(file.path(here, "data", "dropout_glmm_logistic.csv"), colClasses = cc)
f1 <- left ~ early_alliance + ruptures + prior_negative_therapy + (1 | therapist)
pp <- read.csv(file.path(here, "data", "dropout_glmm_person_period.csv"), colClasses = cc)
f2 <- left ~ wai_sr + open_rupture + session + prior_negative_therapy + (1 | therapist)
out <- list(
  sessions = "data/dropout_glmm_sessions.csv",
  logistic = dump(fit_one(f1, lg), f1, "data/dropout_glmm_logistic.csv"),
  discrete_time = dump(fit_one(f2, pp), f2, "data/dropout_glmm_person_period.csv"),
  tol_pwrss = TOL,
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
)
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
      file.path(here, "glmer_dropout.json"))
