/* Preloaded by scripts/sanitize.sh: dlclose does nothing, so plugins (Open MPI's MCA components)
 * stay mapped until exit and LeakSanitizer can name the library a leak comes from (see lsan.supp). */
int dlclose(void* handle) {
  (void)handle;
  return 0;
}
