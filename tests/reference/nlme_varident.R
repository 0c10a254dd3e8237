# Reference values for alliance.models.lmm(..., residual_groups=): nlme's lme with
# weights = varIdent(form = ~ 1 | group) (group-specific residual SDs).
#
# Run from the repository root:
#   python tests/reference/make_mediation_data.py  # (re)make the stacked mediation data
#   Rscript tests/reference/nlme_varident.R        # write tests/reference/nlme_varident.json
#
# Cases: Orthodont (lme4_orthodont.csv) with the residual SD by sex (REML and ML) and by age
# (four groups, REML); the stacked 1-1-1 mediation model of Bauer, Preacher & Gil (2006)
# on simulated data (client intercepts of the two equations independent, a and b paths correlated, residual SD by equation, REML).
# Tight tolerances so that the references are converged past the tests' tolerances.
suppressPackageStartupMessages({
  library(nlme)
  library(jsonlite)
})

here <- "tests/reference"
ctrl <- lmeControl(maxIter = 1000, msMaxIter = 1000, tolerance = 1e-12, msTol = 1e-14,
                   niterEM = 200, msMaxEval = 5000, opt = "nlminb")

orth <- read.csv(file.path(here, "data", "lme4_orthodont.csv"), stringsAsFactors = FALSE)
orth$sex <- ifelse(orth$female == 1, "F", "M")
orth$agegroup <- sprintf("a%02d", orth$age)
med <- read.csv(file.path(here, "data", "nlme_mediation_stacked.csv"), stringsAsFactors = FALSE)

summarise <- function(fit, name, formula, random_formula, groups, reml, data_name) {
  ratios <- coef(fit$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
  vc <- getVarCov(fit)
  list(
    name = name,
    data = data_name,
    formula = formula,
    random = random_formula,
    residual_groups = groups,
    reml = reml,
    fixef = as.list(fixef(fit)),
    se = as.list(sqrt(diag(vcov(fit)))),
    loglik = as.numeric(logLik(fit)),
    df = attr(logLik(fit), "df"),
    aic = AIC(fit),
    sigma = fit$sigma,
    ratios = as.list(ratios),
    varcov = unname(matrix(as.numeric(vc), nrow(vc))),
    varcov_names = colnames(vc)
  )
}

out <- list()
m <- lme(distance ~ age * female, random = ~ age | Subject, data = orth,
         weights = varIdent(form = ~ 1 | sex), method = "REML", control = ctrl)
out$orthodont_sex_reml <- summarise(m, "orthodont_sex_reml",
  "distance ~ age * female + (1 + age | Subject)", "~ age | Subject", "sex", TRUE, "lme4_orthodont")
m <- lme(distance ~ age * female, random = ~ age | Subject, data = orth,
         weights = varIdent(form = ~ 1 | sex), method = "ML", control = ctrl)
out$orthodont_sex_ml <- summarise(m, "orthodont_sex_ml",
  "distance ~ age * female + (1 + age | Subject)", "~ age | Subject", "sex", FALSE, "lme4_orthodont")
m <- lme(distance ~ age + female, random = ~ 1 | Subject, data = orth,
         weights = varIdent(form = ~ 1 | agegroup), method = "REML", control = ctrl)
out$orthodont_age_reml <- summarise(m, "orthodont_age_reml",
  "distance ~ age + female + (1 | Subject)", "~ 1 | Subject", "agegroup", TRUE, "lme4_orthodont")
m <- lme(z ~ 0 + s_m + a_xw + a_xb + a_session + s_y + b_mw + b_mb + b_xw + b_xb + b_yw +
           b_session,
         random = list(client = pdBlocked(list(pdDiag(~ 0 + s_m + s_y),
                                               pdSymm(~ 0 + a_xw + b_mw)))), data = med,
         weights = varIdent(form = ~ 1 | dv), method = "REML",
         control = modifyList(ctrl, list(.relStep = 1e-3)))
# (apVar's finite-difference Hessian with a step of 1e-3 instead of the default eps^(1/3):
# the default's value moves by 2% between steps, this one by less than 1e-4)
# asymptotic SE of cov(a_j, b_j) by the delta method on nlme's apVar (natural parameters:
# log SDs and z = log((1 + r) / (1 - r)) of the pdSymm block, the log SD ratio, log sigma)
pars <- attr(m$apVar, "Pars")
sa <- exp(pars[["reStruct.client3"]]); sb <- exp(pars[["reStruct.client4"]])
zc <- pars[["reStruct.client5"]]
cov_ab <- sa * sb * tanh(zc / 2)
grad <- c(0, 0, cov_ab, cov_ab, sa * sb * (1 - tanh(zc / 2)^2) / 2, 0, 0)
cov_ab_se <- sqrt(as.numeric(t(grad) %*% m$apVar %*% grad))
out$mediation_stacked <- summarise(m, "mediation_stacked",
  paste("z ~ 0 + s_m + a_xw + a_xb + a_session + s_y + b_mw + b_mb + b_xw + b_xb + b_yw +",
        "b_session + (0 + s_m | client) + (0 + s_y | client) + (0 + a_xw + b_mw | client)"),
  "pdBlocked(pdDiag(~ 0 + s_m + s_y), pdSymm(~ 0 + a_xw + b_mw)) | client", "dv", TRUE,
  "nlme_mediation_stacked")
out$mediation_stacked$cov_ab <- cov_ab
out$mediation_stacked$cov_ab_se <- cov_ab_se

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           file.path(here, "nlme_varident.json"))
