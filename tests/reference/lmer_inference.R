# Reference values for model comparison and inference on LMMs (issue 18):
# lme4 anova() likelihood-ratio tests, confint.merMod (profile and Wald), pbkrtest
# Kenward-Roger df and emmeans marginal means / pairwise contrasts.
#
# Run from the repository root:
#   Rscript tests/reference/lmer_inference.R
# It reads tests/reference/data/lme4_sleepstudy.csv and lme4_machines.csv (written by
# lme4_crossed_reference.R) and writes tests/reference/lmer_inference.json.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(emmeans)
  library(jsonlite)
})

here <- "tests/reference"
ctrl <- lmerControl(
  optimizer = "bobyqa",
  optCtrl = list(maxfun = 1e5, rhobeg = 0.2, rhoend = 1e-12),
  check.conv.singular = "ignore"
)
read <- function(name) {
  read.csv(file.path(here, "data", paste0(name, ".csv")), stringsAsFactors = FALSE)
}
sleep <- read("lme4_sleepstudy")
mach <- read("lme4_machines")
mach$Machine <- factor(mach$Machine)
main <- read("lmm_main")
main$prior <- factor(main$prior, levels = c("no", "yes"))

fit <- function(formula, data, reml = TRUE) {
  lmer(as.formula(formula), data = data, REML = reml, control = ctrl)
}

# lme4 names the rows by the argument expressions; pass them as MODEL1, MODEL2, ...
anova_case <- function(name, data_name, data, formulas, reml, refit = TRUE) {
  env <- new.env()
  for (i in seq_along(formulas)) {
    assign(paste0("MODEL", i), fit(formulas[[i]], data, reml[[i]]), envir = env)
  }
  call <- str2lang(paste0("anova(", paste0("MODEL", seq_along(formulas), collapse = ", "),
                          ", refit = ", refit, ")"))
  a <- as.data.frame(eval(call, env))
  ord <- match(rownames(a), paste0("MODEL", seq_along(formulas)))
  list(
    name = name, data = paste0("data/", data_name, ".csv"), refit = refit,
    formulas = formulas, reml = unlist(reml), order = ord - 1L,
    npar = a$npar, AIC = a$AIC, BIC = a$BIC, logLik = a$logLik,
    deviance = a[[grep("deviance|log\\(L\\)", names(a))[1]]],
    Chisq = a$Chisq, Df = a$Df, p = a[["Pr(>Chisq)"]]
  )
}

anova_out <- list(
  anova_case("sleepstudy_random", "lme4_sleepstudy", sleep,
             list("Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"),
             list(TRUE, TRUE)),
  anova_case("sleepstudy_random_norefit", "lme4_sleepstudy", sleep,
             list("Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"),
             list(TRUE, TRUE), refit = FALSE),
  anova_case("sleepstudy_fixed", "lme4_sleepstudy", sleep,
             list("Reaction ~ Days + (Days | Subject)", "Reaction ~ 1 + (Days | Subject)"),
             list(TRUE, FALSE)),
  anova_case("machines_three", "lme4_machines", mach,
             list("score ~ Machine + (1 | Worker) + (1 | Worker:Machine)",
                  "score ~ 1 + (1 | Worker) + (1 | Worker:Machine)",
                  "score ~ Machine + (1 | Worker)"),
             list(TRUE, TRUE, TRUE))
)

# GLMMs: anova of glmer fits (nAGQ = 5, where our quadrature matches glmer closely)
cbpp_d <- read("glmer_cbpp")
cbpp_d$period <- factor(cbpp_d$period)
g1 <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp_d,
            family = binomial, nAGQ = 5)
g0 <- glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd), data = cbpp_d,
            family = binomial, nAGQ = 5)
ga <- as.data.frame(anova(g0, g1))
anova_out[[length(anova_out) + 1]] <- list(
  name = "cbpp_glmm", data = "data/glmer_cbpp.csv", refit = TRUE, glmm = TRUE, nagq = 5L,
  formulas = c("cbind(incidence, size - incidence) ~ 1 + (1 | herd)",
               "cbind(incidence, size - incidence) ~ period + (1 | herd)"),
  reml = c(FALSE, FALSE), order = c(0L, 1L),
  npar = ga$npar, AIC = ga$AIC, BIC = ga$BIC, logLik = ga$logLik,
  deviance = ga[[grep("deviance|log\\(L\\)", names(ga))[1]]],
  Chisq = ga$Chisq, Df = ga$Df, p = ga[["Pr(>Chisq)"]]
)

ci_case <- function(name, data_name, data, formula, reml = TRUE) {
  m <- fit(formula, data, reml)
  pr <- confint(m, method = "profile", oldNames = TRUE, level = 0.95)
  wa <- confint(m, method = "Wald", oldNames = TRUE, level = 0.95)
  list(name = name, data = paste0("data/", data_name, ".csv"), formula = formula,
       reml = reml, parm = rownames(pr),
       profile_low = unname(pr[, 1]), profile_high = unname(pr[, 2]),
       wald_low = unname(wa[, 1]), wald_high = unname(wa[, 2]))
}
ci_out <- list(
  ci_case("sleepstudy", "lme4_sleepstudy", sleep, "Reaction ~ Days + (Days | Subject)"),
  ci_case("sleepstudy_ml", "lme4_sleepstudy", sleep, "Reaction ~ Days + (Days | Subject)",
          reml = FALSE),
  ci_case("machines", "lme4_machines", mach,
          "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)"),
  # crossed: plates by samples (the crossed engine)
  ci_case("penicillin", "lme4_penicillin", read("lme4_penicillin"),
          "diameter ~ 1 + (1 | plate) + (1 | sample)"),
  # a singular fit: the therapist SD is estimated at 0 (lower bound 0)
  ci_case("boundary", "lmm_boundary", read("lmm_boundary"),
          "phq9 ~ alliance_within + session + (1 | client) + (1 | therapist)")
)

kr_case <- function(name, data_name, data, formula) {
  m <- fit(formula, data, TRUE)
  co <- summary(m, ddf = "Kenward-Roger")$coefficients
  va <- as.matrix(vcovAdj(m))
  list(name = name, data = paste0("data/", data_name, ".csv"), formula = formula,
       term = rownames(co), estimate = unname(co[, "Estimate"]),
       se = unname(co[, "Std. Error"]), df = unname(co[, "df"]),
       p = unname(co[, "Pr(>|t|)"]), vcov_adj = unname(va))
}
# unbalanced: every 7th row of sleepstudy dropped (rows 1, 8, 15, ... in R's numbering)
sleep_unbal <- sleep[-seq(1, nrow(sleep), by = 7), ]
kr_out <- list(
  kr_case("sleepstudy", "lme4_sleepstudy", sleep, "Reaction ~ Days + (Days | Subject)"),
  kr_case("sleepstudy_unbalanced", "lme4_sleepstudy", sleep_unbal,
          "Reaction ~ Days + (Days | Subject)"),
  kr_case("partially_crossed", "lme4_partially_crossed", read("lme4_partially_crossed"),
          "phq9 ~ alliance + session + (1 + session | client) + (1 | therapist)"),
  kr_case("machines", "lme4_machines", mach,
          "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)")
)

emm_case <- function(name, data_name, data, formula, specs, lmer_df) {
  m <- fit(formula, data, TRUE)
  e <- emmeans(m, as.formula(paste("pairwise ~", specs)), lmer.df = lmer_df)
  mm <- as.data.frame(summary(e$emmeans))
  cc <- as.data.frame(summary(e$contrasts, adjust = "none"))
  tukey <- as.data.frame(summary(e$contrasts))  # emmeans' default adjustment
  list(name = name, data = paste0("data/", data_name, ".csv"), formula = formula,
       specs = specs, lmer_df = lmer_df,
       means = list(level = as.character(mm[[specs]]), estimate = mm$emmean, se = mm$SE,
                    df = mm$df, low = mm$lower.CL, high = mm$upper.CL),
       contrasts = list(contrast = as.character(cc$contrast), estimate = cc$estimate,
                        se = cc$SE, df = cc$df, t = cc$t.ratio, p = cc$p.value,
                        p_tukey = tukey$p.value))
}
emm_out <- list(
  emm_case("machines", "lme4_machines", mach,
           "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", "Machine", "satterthwaite"),
  emm_case("machines_kr", "lme4_machines", mach,
           "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", "Machine", "kenward-roger"),
  # a factor interacting with a covariate, another covariate averaged at its mean
  emm_case("lmm_main", "lmm_main", main,
           "phq9 ~ alliance_within * prior + session + (1 | client) + (1 | therapist)",
           "prior", "satterthwaite")
)

out <- list(
  anova = anova_out, confint = ci_out, kenward_roger = kr_out, emmeans = emm_out,
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  lmerTest = as.character(packageVersion("lmerTest")),
                  pbkrtest = as.character(packageVersion("pbkrtest")),
                  emmeans = as.character(packageVersion("emmeans")))
)
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
      file.path(here, "lmer_inference.json"))
