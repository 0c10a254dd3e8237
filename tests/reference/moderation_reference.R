# lavaan and lme4/lmerTest reference values for alliance.models.moderation.
#
# Run from the repository root after `PYTHONPATH=src python tests/reference/make_moderation_data.py`:
#     Rscript tests/reference/moderation_reference.R
# Writes tests/reference/moderation_reference.json.
#
# 1. Multi-group dynamic panel model (categorical moderator): the DPM of
#    lavaan_panel_models.R (Allison, Williams & Moral-Benito, 2017) with group = "group"
#    (prior negative therapy 0/1) and every parameter free per group (group-specific labels
#    c(a_1, a_2)*, no group.equal); missing = "fiml", fixed.x = FALSE, observed information;
#    the best of lavaan's start rules and optimizers (best_fit). Wald tests with lavTestWald.
# 2. Continuous moderator: the lagged-outcome multilevel model with a random slope of the
#    moderated within-client effect (Heisig & Schaeffer, 2019), lmer (REML) on the session
#    pairs Python builds, Satterthwaite tests (lmerTest), simple slopes with contest1D, and
#    the Johnson-Neyman bounds computed by hand from vcov() and the interaction's df.
suppressPackageStartupMessages({
  library(lavaan)
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})
source("tests/reference/lavaan_panel_models.R")

# ---- 1. multi-group DPM
wide <- read.csv("tests/reference/data/moderation_panel_wide.csv")
T <- 6L
grouped <- function(syntax) {
  for (lab in c("rho_y", "rho_x", "beta_yx", "beta_xy"))
    syntax <- gsub(paste0(lab, "\\*"), sprintf("c(%s_1, %s_2)*", lab, lab), syntax)
  syntax
}
multigroup <- function(slopes) {
  fit <- best_fit(grouped(dpm_syntax(T, slopes = slopes)), wide, group = "group",
                  group.label = c("0", "1"))
  pe <- parameterEstimates(fit)
  pe <- pe[, c("lhs", "op", "rhs", "group", "label", "est", "se")]
  wald <- function(cons) {
    w <- lavTestWald(fit, constraints = cons)
    list(constraints = cons, stat = unname(w$stat), df = unname(w$df),
         p = unname(w$p.value))
  }
  list(
    loglik = as.numeric(logLik(fit)),
    npar = as.integer(fitMeasures(fit, "npar")),
    nobs = as.integer(lavInspect(fit, "nobs")),
    chisq = unname(fitMeasures(fit, "chisq")),
    df = unname(fitMeasures(fit, "df")),
    bic = unname(fitMeasures(fit, "bic")),
    local_maxima = as.list(attr(fit, "local_maxima")),
    params = pe,
    wald_focal = wald("beta_yx_1 == beta_yx_2"),
    wald_both = wald("beta_yx_1 == beta_yx_2\nbeta_xy_1 == beta_xy_2")
  )
}

# ---- 2. lagged-outcome MLM with a random slope, simple slopes, Johnson-Neyman
pairs <- read.csv("tests/reference/data/moderation_mlm_pairs.csv")
fit <- lmer(y ~ x_within + x_between + session + y_now + mod + x_within:mod + x_between:mod +
              (1 + session + x_within | client), data = pairs, REML = TRUE,
            control = lmerControl(optimizer = "bobyqa",
                                  optCtrl = list(maxfun = 1e5)))
co <- summary(fit)$coefficients
beta <- fixef(fit)
V <- as.matrix(vcov(fit))
mods <- tapply(pairs$mod, pairs$client, `[`, 1)
at <- c(mean(mods) - sd(mods), mean(mods), mean(mods) + sd(mods))
slopes <- lapply(at, function(m) {
  L <- setNames(rep(0, length(beta)), names(beta))
  L["x_within"] <- 1
  L["x_within:mod"] <- m
  r <- contest1D(fit, L)
  list(at = m, estimate = r$Estimate, se = r$`Std. Error`, df = r$df, t = r$`t value`,
       p = r$`Pr(>|t|)`)
})
df_int <- co["x_within:mod", "df"]
crit <- qt(0.975, df_int)
b1 <- beta["x_within"]; b3 <- beta["x_within:mod"]
v11 <- V["x_within", "x_within"]; v13 <- V["x_within", "x_within:mod"]
v33 <- V["x_within:mod", "x_within:mod"]
qa <- b3^2 - crit^2 * v33
qb <- 2 * (b1 * b3 - crit^2 * v13)
qc <- b1^2 - crit^2 * v11
roots <- sort(c((-qb - sqrt(qb^2 - 4 * qa * qc)) / (2 * qa),
                (-qb + sqrt(qb^2 - 4 * qa * qc)) / (2 * qa)))
vc <- as.data.frame(VarCorr(fit))

out <- list(
  lavaan_version = as.character(packageVersion("lavaan")),
  lme4_version = as.character(packageVersion("lme4")),
  lmerTest_version = as.character(packageVersion("lmerTest")),
  multigroup = multigroup(FALSE),
  multigroup_slopes = multigroup(TRUE),
  mlm = list(
    loglik = as.numeric(logLik(fit)),
    terms = rownames(co),
    estimate = unname(co[, "Estimate"]),
    se = unname(co[, "Std. Error"]),
    df = unname(co[, "df"]),
    vcov = unname(V),
    varcor = vc,
    simple_slopes = slopes,
    johnson_neyman = list(lower = roots[1], upper = roots[2], critical = crit, df = df_int,
                          region = if (qa > 0) "outside" else "inside")
  )
)
write_json(out, "tests/reference/moderation_reference.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE, na = "null")
cat("wrote tests/reference/moderation_reference.json\n")
