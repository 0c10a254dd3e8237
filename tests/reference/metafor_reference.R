# Reference values for alliance.meta from R's metafor and clubSandwich.
#
# Run from the repository root:
#     Rscript tests/reference/metafor_reference.R
# Writes tests/reference/data/meta_*.csv (the input data) and
# tests/reference/metafor_reference.json (the values the tests compare against).
# R is needed only to regenerate these files, never to run the tests.
#
# Datasets
# - dat.molloy2014 (metafor/metadat): Molloy, O'Carroll & Ferguson (2014). Conscientiousness
#   and medication adherence: a meta-analysis. Annals of Behavioral Medicine, 47(1), 92-101.
#   16 correlations; analysed with Fisher's z (measure "ZCOR").
# - dat.bcg (metafor/metadat): Colditz et al. (1994). Efficacy of BCG vaccine in the
#   prevention of tuberculosis. JAMA, 271(9), 698-702. 13 trials; log risk ratios ("RR").
# - dat.konstantopoulos2011 (metafor/metadat): Konstantopoulos (2011). Fixed effects and
#   variance components estimation in three-level meta-analysis. Research Synthesis
#   Methods, 2(1), 61-76. 56 standardized mean differences in 11 districts.
# - meta_alliance_outcome.csv: the synthetic alliance-outcome dataset bundled with the
#   package (src/alliance/datasets/make_meta_example.py), copied here unchanged.
# - meta_sim_homog.csv: simulated below (seed 2718), 25 correlations with no true
#   heterogeneity, so that tau^2 estimates sit at or near zero.
#
# Convergence: rma.uni with threshold = 1e-10 (Fisher scoring), tol = 1e-12 (uniroot for
# PM and the Q-profile CI); rma.mv with nlminb rel.tol = 1e-10 (tighter settings stop nlminb with a
# false-convergence code; optimizers agree to about 1e-7 relative on sigma^2 here).

suppressPackageStartupMessages({
  library(metafor)
  library(clubSandwich)
  library(jsonlite)
})

out_dir <- "tests/reference"
data_dir <- file.path(out_dir, "data")
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)

ctrl <- list(threshold = 1e-10, tol = 1e-12, maxiter = 10000)
ci_ctrl <- list(tol = 1e-12)
mv_ctrl <- list(rel.tol = 1e-10, iter.max = 10000, eval.max = 10000)

# ---- datasets ---------------------------------------------------------------------------
molloy <- dat.molloy2014[, c("authors", "year", "ni", "ri", "controls", "design", "a_measure",
                             "c_measure", "meanage", "quality")]
write.csv(molloy, file.path(data_dir, "meta_molloy2014.csv"), row.names = FALSE)

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg <- data.frame(trial = bcg$trial, author = bcg$author, year = bcg$year,
                  ablat = bcg$ablat, alloc = bcg$alloc,
                  yi = as.numeric(bcg$yi), vi = as.numeric(bcg$vi))
write.csv(bcg, file.path(data_dir, "meta_bcg.csv"), row.names = FALSE)

konst <- dat.konstantopoulos2011[, c("district", "school", "study", "year", "yi", "vi")]
konst <- data.frame(konst)
konst$yi <- as.numeric(konst$yi)
konst$vi <- as.numeric(konst$vi)
write.csv(konst, file.path(data_dir, "meta_konstantopoulos2011.csv"), row.names = FALSE)

set.seed(2718)
k_sim <- 25
n_sim <- sample(30:300, k_sim, replace = TRUE)
r_sim <- round(tanh(rnorm(k_sim, atanh(0.25), 1 / sqrt(n_sim - 3))), 3)
sim <- data.frame(study = sprintf("sim%02d", 1:k_sim), n = n_sim, r = r_sim)
write.csv(sim, file.path(data_dir, "meta_sim_homog.csv"), row.names = FALSE)

# re-read every dataset from CSV so R and Python see exactly the same numbers
molloy <- read.csv(file.path(data_dir, "meta_molloy2014.csv"))
bcg <- read.csv(file.path(data_dir, "meta_bcg.csv"))
konst <- read.csv(file.path(data_dir, "meta_konstantopoulos2011.csv"))
sim <- read.csv(file.path(data_dir, "meta_sim_homog.csv"))
alliance <- read.csv(file.path(data_dir, "meta_alliance_outcome.csv"))

zcor <- function(d, r, n) escalc(measure = "ZCOR", ri = d[[r]], ni = d[[n]])
datasets <- list(
  molloy2014 = list(data = molloy, es = zcor(molloy, "ri", "ni"), kind = "r", r = "ri", n = "ni"),
  bcg = list(data = bcg, es = data.frame(yi = bcg$yi, vi = bcg$vi), kind = "yi"),
  alliance = list(data = alliance, es = zcor(alliance, "r", "n"), kind = "r", r = "r", n = "n"),
  sim_homog = list(data = sim, es = zcor(sim, "r", "n"), kind = "r", r = "r", n = "n")
)

num <- function(x) unname(as.numeric(x))

uni_record <- function(name, fit, method, test, mods) {
  rec <- list(dataset = name, method = method, test = test, mods = mods,
              beta = num(fit$beta), se = num(fit$se), zval = num(fit$zval), pval = num(fit$pval),
              ci_lb = num(fit$ci.lb), ci_ub = num(fit$ci.ub),
              tau2 = num(fit$tau2), se_tau2 = num(fit$se.tau2),
              I2 = num(fit$I2), H2 = num(fit$H2), QE = num(fit$QE), QEp = num(fit$QEp),
              QM = num(fit$QM), QMp = num(fit$QMp), k = fit$k, p = fit$p,
              ll_ml = num(fit$fit.stats["ll", "ML"]), ll_reml = num(fit$fit.stats["ll", "REML"]))
  if (fit$int.only) {
    pr <- predict(fit)
    rec$pred <- num(pr$pred)
    rec$pi_lb <- num(pr$pi.lb)
    rec$pi_ub <- num(pr$pi.ub)
  } else {
    rec$R2 <- num(fit$R2)
  }
  if (method != "FE") {
    ci <- confint(fit, control = ci_ctrl)
    rec$tau2_ci <- num(ci$random["tau^2", c("ci.lb", "ci.ub")])
    rec$I2_ci <- num(ci$random["I^2(%)", c("ci.lb", "ci.ub")])
    rec$H2_ci <- num(ci$random["H^2", c("ci.lb", "ci.ub")])
  }
  rec
}

uni <- list()
methods <- c("REML", "ML", "DL", "PM", "HE", "SJ", "FE")
for (name in names(datasets)) {
  es <- datasets[[name]]$es
  for (method in methods) {
    for (test in c("z", "knha")) {
      if (method == "FE" && test == "knha") next
      fit <- rma(yi = es$yi, vi = es$vi, method = method, test = test, control = ctrl)
      uni[[length(uni) + 1]] <- uni_record(name, fit, method, test, NULL)
    }
  }
}

# meta-regression
mreg <- list(
  list(name = "molloy2014", mods = "~ a_measure + meanage"),
  list(name = "bcg", mods = "~ ablat"),
  list(name = "bcg", mods = "~ ablat + alloc"),
  list(name = "alliance", mods = "~ rater + year")
)
for (spec in mreg) {
  d <- datasets[[spec$name]]
  for (method in c("REML", "ML", "DL", "PM", "HE", "SJ", "FE")) {
    for (test in c("z", "knha")) {
      if (method == "FE" && test == "knha") next
      fit <- rma(yi = d$es$yi, vi = d$es$vi, mods = as.formula(spec$mods), data = d$data,
                 method = method, test = test, control = ctrl)
      uni[[length(uni) + 1]] <- uni_record(spec$name, fit, method, test, spec$mods)
    }
  }
}

# ---- small-study and sensitivity tools ----------------------------------------------------
egger <- list()
trimfill_out <- list()
loo <- list()
infl <- list()
for (name in c("molloy2014", "bcg", "alliance")) {
  es <- datasets[[name]]$es
  for (test in c("z", "knha")) {
    fit <- rma(yi = es$yi, vi = es$vi, method = "REML", test = test, control = ctrl)
    eg <- regtest(fit)
    egger[[length(egger) + 1]] <- list(dataset = name, method = "REML", test = test,
                                       model = "rma", stat = num(eg$zval), p = num(eg$pval),
                                       df = num(if (is.null(eg$ddf)) NA else eg$ddf),
                                       limit = num(eg$est), limit_ci = num(c(eg$ci.lb, eg$ci.ub)))
    l1 <- leave1out(fit)
    loo[[length(loo) + 1]] <- list(dataset = name, method = "REML", test = test,
                                   estimate = num(l1$estimate), se = num(l1$se),
                                   ci_lb = num(l1$ci.lb), ci_ub = num(l1$ci.ub),
                                   Q = num(l1$Q), tau2 = num(l1$tau2), I2 = num(l1$I2))
    inf <- influence(fit)
    infl[[length(infl) + 1]] <- list(dataset = name, method = "REML", test = test,
                                     rstudent = num(inf$inf$rstudent), dffits = num(inf$inf$dffits),
                                     cook_d = num(inf$inf$cook.d), cov_r = num(inf$inf$cov.r),
                                     tau2_del = num(inf$inf$tau2.del), QE_del = num(inf$inf$QE.del),
                                     hat = num(inf$inf$hat), weight = num(inf$inf$weight),
                                     dfbetas = num(inf$dfbs[[1]]))
  }
  eg <- regtest(rma(yi = es$yi, vi = es$vi, method = "FE", control = ctrl), model = "lm")
  egger[[length(egger) + 1]] <- list(dataset = name, method = "FE", test = "t", model = "lm",
                                     stat = num(eg$zval), p = num(eg$pval), df = num(eg$dfs),
                                     limit = num(eg$est), limit_ci = num(c(eg$ci.lb, eg$ci.ub)))
  for (method in c("REML", "DL", "FE")) {
    fit <- rma(yi = es$yi, vi = es$vi, method = method, control = ctrl)
    for (estimator in c("L0", "R0")) {
      tf <- trimfill(fit, estimator = estimator, control = ctrl)
      trimfill_out[[length(trimfill_out) + 1]] <- list(
        dataset = name, method = method, estimator = estimator, side = tf$side,
        k0 = tf$k0, beta = num(tf$beta), se = num(tf$se), tau2 = num(tf$tau2),
        ci_lb = num(tf$ci.lb), ci_ub = num(tf$ci.ub), yi_filled = num(tf$yi[tf$fill]))
    }
  }
}

# ---- three-level model and cluster-robust (CR2) inference -------------------------------
mv <- list()
cr2 <- list()
for (method in c("REML", "ML")) {
  for (mods in list(NULL, "~ year")) {
    for (test in c("z", "t")) {
      f <- if (is.null(mods)) ~ 1 else as.formula(mods)
      fit <- rma.mv(yi, vi, mods = f, random = ~ 1 | district / school, data = konst,
                    method = method, test = test, control = mv_ctrl)
      rec <- list(dataset = "konstantopoulos2011", method = method, test = test, mods = mods,
                  beta = num(fit$beta), se = num(fit$se), zval = num(fit$zval),
                  pval = num(fit$pval), ci_lb = num(fit$ci.lb), ci_ub = num(fit$ci.ub),
                  sigma2 = num(fit$sigma2), QE = num(fit$QE), QEp = num(fit$QEp),
                  QM = num(fit$QM), QMp = num(fit$QMp),
                  ll = num(logLik(fit)))
      if (is.null(mods)) {
        pr <- predict(fit)
        rec$pi_lb <- num(pr$pi.lb)
        rec$pi_ub <- num(pr$pi.ub)
      }
      mv[[length(mv) + 1]] <- rec
      if (test == "z") {
        ct <- coef_test(fit, vcov = "CR2", cluster = konst$district, test = "Satterthwaite")
        cr2[[length(cr2) + 1]] <- list(dataset = "konstantopoulos2011", model = "rma.mv",
                                       method = method, mods = mods, cluster = "district",
                                       beta = num(ct$beta), se = num(ct$SE),
                                       df = num(ct$df_Satt), p = num(ct$p_Satt))
      }
    }
  }
}
for (mods in list(NULL, "~ year")) {
  f <- if (is.null(mods)) ~ 1 else as.formula(mods)
  fit <- rma(yi, vi, mods = f, data = konst, method = "REML", control = ctrl)
  ct <- coef_test(fit, vcov = "CR2", cluster = konst$district, test = "Satterthwaite")
  cr2[[length(cr2) + 1]] <- list(dataset = "konstantopoulos2011", model = "rma.uni",
                                 method = "REML", mods = mods, cluster = "district",
                                 beta = num(ct$beta), se = num(ct$SE),
                                 df = num(ct$df_Satt), p = num(ct$p_Satt))
}

ref <- list(
  generated_by = "tests/reference/metafor_reference.R",
  R = R.version.string,
  metafor = as.character(packageVersion("metafor")),
  clubSandwich = as.character(packageVersion("clubSandwich")),
  control = list(rma = ctrl, confint = ci_ctrl, rma_mv = mv_ctrl),
  uni = uni, egger = egger, trimfill = trimfill_out, leave1out = loo, influence = infl,
  mv = mv, cr2 = cr2
)
writeLines(toJSON(ref, digits = NA, auto_unbox = TRUE, null = "null", na = "null", pretty = TRUE),
           file.path(out_dir, "metafor_reference.json"))
