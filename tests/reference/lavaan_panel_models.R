# The panel models of alliance.models.sem written out in lavaan syntax from their papers,
# and the best-of-starts fit; sourced by lavaan_reference.R and lavaan_fit_measures.R.
#   DPM: Allison, Williams & Moral-Benito (2017), ML-SEM with fixed effects as latent
#        variables correlated with the predetermined first wave; wave-specific intercepts,
#        residual variances and residual covariances; lagged paths equal over waves.
#   DPM with slopes: the same plus latent linear slopes (loadings t - 1).
#   RI-CLPM: Hamaker, Kuiper & Grasman (2015), lagged paths equal over waves.

dpm_syntax <- function(T, slopes = FALSE) {
  later <- 2:T
  lines <- c(
    paste0("eta_y =~ ", paste0("1*y", later, collapse = " + ")),
    paste0("eta_x =~ ", paste0("1*x", later, collapse = " + "))
  )
  lat <- c("eta_y", "eta_x")
  if (slopes) {
    lines <- c(lines,
      paste0("slope_y =~ ", paste0(later - 1, "*y", later, collapse = " + ")),
      paste0("slope_x =~ ", paste0(later - 1, "*x", later, collapse = " + ")))
    lat <- c(lat, "slope_y", "slope_x")
  }
  for (t in later) {
    lines <- c(lines,
      sprintf("y%d ~ rho_y*y%d + beta_yx*x%d", t, t - 1, t - 1),
      sprintf("x%d ~ rho_x*x%d + beta_xy*y%d", t, t - 1, t - 1),
      sprintf("y%d ~~ y%d", t, t), sprintf("x%d ~~ x%d", t, t), sprintf("y%d ~~ x%d", t, t))
  }
  block <- c(lat, "y1", "x1")
  for (i in seq_along(block)) for (j in i:length(block))
    lines <- c(lines, sprintf("%s ~~ %s", block[i], block[j]))
  for (t in 1:T) lines <- c(lines, sprintf("y%d ~ 1", t), sprintf("x%d ~ 1", t))
  for (l in lat) lines <- c(lines, sprintf("%s ~ 0*1", l))
  paste(lines, collapse = "\n")
}

riclpm_syntax <- function(T) {
  lines <- c(
    paste0("ri_y =~ ", paste0("1*y", 1:T, collapse = " + ")),
    paste0("ri_x =~ ", paste0("1*x", 1:T, collapse = " + ")))
  for (t in 1:T) lines <- c(lines,
    sprintf("wy%d =~ 1*y%d", t, t), sprintf("wx%d =~ 1*x%d", t, t),
    sprintf("y%d ~~ 0*y%d", t, t), sprintf("x%d ~~ 0*x%d", t, t),
    sprintf("wy%d ~~ wy%d", t, t), sprintf("wx%d ~~ wx%d", t, t),
    sprintf("wy%d ~~ wx%d", t, t),
    sprintf("y%d ~ 1", t), sprintf("x%d ~ 1", t),
    sprintf("wy%d ~ 0*1", t), sprintf("wx%d ~ 0*1", t))
  for (t in 2:T) lines <- c(lines,
    sprintf("wy%d ~ alpha_y*wy%d + beta_yx*wx%d", t, t - 1, t - 1),
    sprintf("wx%d ~ alpha_x*wx%d + beta_xy*wy%d", t, t - 1, t - 1))
  lines <- c(lines, "ri_y ~~ ri_y", "ri_x ~~ ri_x", "ri_y ~~ ri_x", "ri_y ~ 0*1", "ri_x ~ 0*1",
             # the random intercepts are not correlated with the first deviations
             "ri_y ~~ 0*wy1", "ri_y ~~ 0*wx1", "ri_x ~~ 0*wy1", "ri_x ~~ 0*wx1")
  paste(lines, collapse = "\n")
}

best_fit <- function(syntax, wide, ...) {
  # DPM likelihoods can have more than one local maximum (Allison et al., 2017, note
  # this too): fit from lavaan's two start rules with two optimizers, keep the best.
  best <- NULL
  found <- c()
  for (st in c("default", "simple")) for (om in c("nlminb", "BFGS")) {
    fit <- try(lavaan(syntax, data = wide, missing = "fiml", fixed.x = FALSE,
                      meanstructure = TRUE, information = "observed",
                      start = st, optim.method = om, ...), silent = TRUE)
    if (inherits(fit, "try-error") || !lavInspect(fit, "converged")) next
    ll <- as.numeric(logLik(fit))
    found <- c(found, setNames(ll, paste(st, om)))
    if (is.null(best) || ll > as.numeric(logLik(best)) + 1e-8) {
      best <- fit
      how <- c(start = st, optim.method = om)
    }
  }
  attr(best, "local_maxima") <- found
  attr(best, "how") <- how
  best
}
