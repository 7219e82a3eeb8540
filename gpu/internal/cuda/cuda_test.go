package cuda

import "testing"

func TestOpen_FailsWithAReasonOrWorks(t *testing.T) {
	d, err := Shared()
	if err != nil {
		if err.Error() == "" {
			t.Fatal("empty reason")
		}
		t.Skipf("no CUDA device here: %v", err)
	}
	p, err := d.Alloc(16)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(p)
	if err := d.Upload(p, []float32{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if err := d.Launch("exp_f32", 4, p, p, int64(4)); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, 4)
	if err := d.Download(out, p); err != nil {
		t.Fatal(err)
	}
	if out[0] < 2.718 || out[0] > 2.719 {
		t.Fatalf("exp(1) = %v", out[0])
	}
}
