/* example.c: generate the tiny dataset, print its info and its first sentence.
   Build: cc -std=c11 example.c $(pkg-config --cflags --libs behemoth) -o example */
#include <behemoth.h>
#include <stdio.h>
#include <stdlib.h>

#define TRY(call) do { if ((call) != BH_OK) { fprintf(stderr, "%s\n", bh_last_error()); return 1; } } while (0)

int main(void) {
    bh_dataset *ds = NULL;
    char *info = NULL, *text = NULL;
    int64_t n = 0, offsets[2];
    TRY(bh_dataset_generate("{\"preset\": \"tiny\"}", &ds));
    TRY(bh_dataset_info(ds, &info));
    printf("%s\n", info);
    TRY(bh_dataset_array_i64(ds, "offsets", NULL, 0, &n));          /* size query */
    int64_t *all = malloc((size_t)n * sizeof *all);
    int32_t *tokens = NULL;
    TRY(bh_dataset_array_i64(ds, "offsets", all, n, &n));
    offsets[0] = all[0], offsets[1] = all[1];
    TRY(bh_dataset_array_i32(ds, "tokens", NULL, 0, &n));
    tokens = malloc((size_t)n * sizeof *tokens);
    TRY(bh_dataset_array_i32(ds, "tokens", tokens, n, &n));
    TRY(bh_dataset_decode(ds, tokens + offsets[0], offsets[1] - offsets[0], &text));
    printf("first sentence: %s\n", text);
    bh_string_free(text);
    bh_string_free(info);
    free(tokens);
    free(all);
    bh_dataset_free(ds);
    return 0;
}
