# Reference values for alliance.models.glmm (and the first G-study fit), from lme4.
#
# Run from the repository root:  Rscript tests/reference/glmer_reference.R
# Writes tests/reference/data/glmer_*.csv (cbpp and grouseticks are exported from lme4,
# GPL >= 2, see tests/reference/data/GLMER_DATA_LICENSE.txt; the simulations are made here)
# and tests/reference/glmer_*.json.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
here <- "tests/reference"
dir.create(file.path(here, "data"), showWarnings = FALSE)

data(cbpp, package = "lme4")
cb <- data.frame(herd = as.character(cbpp$herd), incidence = cbpp$incidence,
                 size = cbpp$size, period = as.character(cbpp$period))
write.csv(cb, file.path(here, "data", "glmer_cbpp.csv"), row.names = FALSE)

data(grouseticks, package = "lme4")
gt <- data.frame(INDEX = as.character(grouseticks$INDEX), TICKS = grouseticks$TICKS,
                 BROOD = as.character(grouseticks$BROOD), HEIGHT = grouseticks$HEIGHT,
                 YEAR = as.character(grouseticks$YEAR),
                 LOCATION = as.character(grouseticks$LOCATION))
gt$HEIGHTc <- (gt$HEIGHT - mean(gt$HEIGHT)) / 100
write.csv(gt, file.path(here, "data", "glmer_grouseticks.csv"), row.names = FALSE)

# crossed binomial: clients seen by raters, partially crossed; slope by client
set.seed(18)
nc <- 120; nr <- 15
sim <- do.call(rbind, lapply(seq_len(nc), function(i) {
  raters <- sample(nr, 4)
  data.frame(client = sprintf("c%03d", i), rater = sprintf("r%02d", rep(raters, each = 5)),
             session = rep(0:4, 4))
}))
sim$x <- rnorm(nrow(sim))
uc <- rnorm(nc, 0, 0.8); us <- rnorm(nc, 0, 0.3); ur <- rnorm(nr, 0, 0.6)
ci <- as.integer(factor(sim$client)); ri <- as.integer(factor(sim$rater))
eta <- -0.4 + 0.5 * sim$x - 0.15 * sim$session + uc[ci] + us[ci] * sim$session + ur[ri]
sim$y <- rbinom(nrow(sim), 1, plogis(eta))
write.csv(sim, file.path(here, "data", "glmer_crossed.csv"), row.names = FALSE)

# Poisson with an offset
set.seed(81)
ng <- 60
pois <- data.frame(client = sprintf("k%02d", rep(seq_len(ng), each = 8)), session = rep(0:7, ng))
pois$exposure <- runif(nrow(pois), 0.5, 2)
gi <- as.integer(factor(pois$client))
pois$markers <- rpois(nrow(pois), pois$exposure * exp(0.3 - 0.1 * pois$session + rnorm(ng, 0, 0.5)[gi]))
pois$logexp <- log(pois$exposure)
write.csv(pois, file.path(here, "data", "glmer_poisson.csv"), row.names = FALSE)

# G-study: 8 coders x 40 sessions, fully crossed, one rating each
set.seed(7)
gs <- expand.grid(coder = sprintf("coder%d", 1:8), session = sprintf("s%02d", 1:40),
                  stringsAsFactors = FALSE)
gs$rating <- 4 + rnorm(40, 0, 0.9)[as.integer(factor(gs$session))] +
  rnorm(8, 0, 0.4)[as.integer(factor(gs$coder))] + rnorm(nrow(gs), 0, 0.6)
write.csv(gs, file.path(here, "data", "glmer_gstudy.csv"), row.names = FALSE)

# glmer's PIRLS stops at a relative change of the penalized deviance of tolPwrss = 1e-7 and
# the Laplace deviance then uses the weights of the previous iterate, so with the default its
# objective carries an error of about 1e-3 in the deviance (cbpp: the log-likelihood at the
# default optimum is 2.8e-4 below the exact Laplace optimum; fixed effects move by 5e-4, SEs
# by 1%). The references are therefore fitted with tolPwrss = 1e-12 (the exact Laplace
# objective); the default fit's log-likelihood is kept as loglik_default.
TOL <- 1e-12
polish <- function(fit) {
  # restart at the optimum with a second optimizer at tight tolerances, keep the better fit
  fit2 <- tryCatch(update(fit, start = list(theta = getME(fit, "theta"), fixef = fixef(fit)),
                          control = glmerControl(optimizer = "bobyqa", tolPwrss = TOL,
                                                 optCtrl = list(maxfun = 1e5, rhoend = 1e-10))),
                   error = function(e) fit)
  if (logLik(fit2) > logLik(fit)) fit2 else fit
}
tight <- function(fit) {
  # refit the default fit with the tight PIRLS tolerance, then polish; keep the default loglik
  fit1 <- update(fit, control = glmerControl(tolPwrss = TOL))
  out <- polish(fit1)
  attr(out, "loglik_default") <- as.numeric(logLik(fit))
  out
}

dump <- function(name, fit, formula, data, family, nagq = 1, extra = list()) {
  co <- summary(fit)$coefficients
  vc <- as.data.frame(VarCorr(fit))
  vc$var1[is.na(vc$var1)] <- ""
  vc$var2[is.na(vc$var2)] <- ""
  re <- lapply(ranef(fit), function(r) list(levels = rownames(r), terms = colnames(r),
                                             values = unname(as.matrix(r))))
  out <- c(list(
    name = name, data = data, formula = formula, family = family, nagq = nagq,
    nobs = nobs(fit), ngroups = as.list(ngrps(fit)),
    fixef = list(term = rownames(co), estimate = unname(co[, 1]), se = unname(co[, 2]),
                 z = unname(co[, 3]), p = unname(co[, 4])),
    vcov = unname(as.matrix(vcov(fit))),
    theta = unname(getME(fit, "theta")),
    varcorr = list(grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor),
    ranef = re,
    loglik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit),
    deviance = unname(summary(fit)$AICtab["deviance"]),
    df_resid = df.residual(fit),
    singular = isSingular(fit),
    loglik_default = if (is.null(attr(fit, "loglik_default"))) as.numeric(logLik(fit))
                     else attr(fit, "loglik_default"),
    tol_pwrss = TOL
  ), extra)
  write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
        file.path(here, paste0("glmer_", name, ".json")))
}

f <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
m <- tight(glmer(as.formula(f), data = cb, family = binomial))
dump("cbpp", m, f, "data/glmer_cbpp.csv", "binomial")
for (k in c(5, 9)) {
  m <- glmer(as.formula(f), data = cb, family = binomial, nAGQ = k,
             control = glmerControl(tolPwrss = TOL))
  dump(paste0("cbpp_agq", k), m, f, "data/glmer_cbpp.csv", "binomial", nagq = k)
}
# the same model as a proportion with weights = trials
cbw <- cb; cbw$prop <- cbw$incidence / cbw$size
m <- tight(glmer(prop ~ period + (1 | herd), data = cbw, weights = size, family = binomial))
dump("cbpp_weights", m, "prop ~ period + (1 | herd)", "data/glmer_cbpp.csv", "binomial")

f <- "TICKS ~ YEAR + HEIGHTc + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)"
m <- tight(glmer(as.formula(f), data = gt, family = poisson))
dump("grouseticks", m, f, "data/glmer_grouseticks.csv", "poisson")

f <- "y ~ x + session + (1 + session | client) + (1 | rater)"
m <- tight(glmer(as.formula(f), data = sim, family = binomial))
dump("crossed", m, f, "data/glmer_crossed.csv", "binomial")

f <- "markers ~ session + (1 | client)"
m <- tight(glmer(as.formula(f), data = pois, family = poisson, offset = logexp))
dump("poisson_offset", m, f, "data/glmer_poisson.csv", "poisson", extra = list(offset = "logexp"))
m <- glmer(as.formula(f), data = pois, family = poisson, offset = logexp, nAGQ = 7,
           control = glmerControl(tolPwrss = TOL))
dump("poisson_agq7", m, f, "data/glmer_poisson.csv", "poisson", nagq = 7,
     extra = list(offset = "logexp"))

# G-study reference: REML variance components of rating ~ 1 + (1|session) + (1|coder)
g <- lmer(rating ~ 1 + (1 | session) + (1 | coder), data = gs, REML = TRUE)
vc <- as.data.frame(VarCorr(g))
write(toJSON(list(data = "data/glmer_gstudy.csv", formula = "rating ~ 1 + (1 | session) + (1 | coder)",
                  grp = vc$grp, vcov = vc$vcov, loglik = as.numeric(logLik(g)),
                  intercept = unname(fixef(g))),
             digits = NA, auto_unbox = TRUE, pretty = TRUE),
      file.path(here, "glmer_gstudy.json"))
