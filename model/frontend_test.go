package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"math/cmplx"
	"strings"
	"testing"
)

func solid(w, h int, c color.Color) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	return img
}

func TestImage_PNGAndJPEGDecodeToPatches(t *testing.T) {
	img := solid(50, 30, color.RGBA{255, 0, 0, 255})
	var p, j bytes.Buffer
	if err := png.Encode(&p, img); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&j, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"png": p.Bytes(), "jpeg": j.Bytes()} {
		dec, err := DecodeImage(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ps := ImagePatches(dec, 16, 4)
		if len(ps) != 16 || len(ps[0]) != 48 {
			t.Fatalf("%s: %d patches of %d", name, len(ps), len(ps[0]))
		}
		for _, v := range ps {
			if math.Abs(float64(v[0]-1)) > 0.05 || math.Abs(float64(v[1]+1)) > 0.05 {
				t.Fatalf("%s: red pixel became %v", name, v[:3])
			}
		}
	}
}

func TestImage_PatchOrderIsRowMajor(t *testing.T) {
	img := solid(8, 8, color.White)
	for y := 4; y < 8; y++ {
		for x := 0; x < 4; x++ {
			img.Set(x, y, color.Black) // bottom-left quarter
		}
	}
	ps := ImagePatches(img, 8, 4)
	want := []float32{1, 1, -1, 1}
	for i, p := range ps {
		if p[0] != want[i] {
			t.Fatalf("patch %d red = %v, want %v", i, p[0], want[i])
		}
	}
}

func TestImage_RefusesOtherFormats(t *testing.T) {
	var g bytes.Buffer
	if err := gif.Encode(&g, solid(4, 4, color.White), nil); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"gif": g.Bytes(), "text": []byte("hello"), "empty": nil} {
		if _, err := DecodeImage(data); !errors.Is(err, ErrImageFormat) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func tone(freq float64, seconds float64) []float32 {
	s := make([]float32, int(seconds*SampleRate))
	for i := range s {
		s[i] = float32(0.5 * math.Sin(2*math.Pi*freq*float64(i)/SampleRate))
	}
	return s
}

func TestWAV_RoundTripAndFieldErrors(t *testing.T) {
	in := tone(440, 0.1)
	out, err := ParseWAV(EncodeWAV(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d samples, want %d", len(out), len(in))
	}
	for i := range in {
		if math.Abs(float64(in[i]-out[i])) > 1e-4 {
			t.Fatalf("sample %d: %v vs %v", i, out[i], in[i])
		}
	}
	patch := func(off int, v any) []byte {
		b := EncodeWAV(in)
		var w bytes.Buffer
		_ = binary.Write(&w, binary.LittleEndian, v)
		copy(b[off:], w.Bytes())
		return b
	}
	for _, c := range []struct {
		data []byte
		want string
	}{
		{[]byte("RIFF...."), "header"},
		{patch(20, uint16(3)), "fmt.audio_format"},
		{patch(22, uint16(2)), "fmt.channels"},
		{patch(24, uint32(44100)), "fmt.sample_rate"},
		{patch(34, uint16(8)), "fmt.bits_per_sample"},
		{patch(16, uint32(1000)), "size"},
		{EncodeWAV(nil)[:36], "data: chunk missing"},
	} {
		_, err := ParseWAV(c.data)
		if !errors.Is(err, ErrAudioFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want %q: %v", c.want, err)
		}
	}
}

func TestFFT_MatchesDFT(t *testing.T) {
	a := make([]complex128, 16)
	for i := range a {
		a[i] = complex(math.Sin(float64(i)*0.7)+float64(i%3), 0)
	}
	want := make([]complex128, 16)
	for k := range want {
		for n, x := range a {
			want[k] += x * cmplx.Exp(complex(0, -2*math.Pi*float64(k*n)/16))
		}
	}
	fft(a)
	for k := range a {
		if cmplx.Abs(a[k]-want[k]) > 1e-9 {
			t.Fatalf("bin %d: %v, want %v", k, a[k], want[k])
		}
	}
}

func argmax32(v []float32) int {
	b := 0
	for i := range v {
		if v[i] > v[b] {
			b = i
		}
	}
	return b
}

func TestLogMel_HigherToneLightsHigherBand(t *testing.T) {
	low, high := LogMel(tone(300, 0.2), 32), LogMel(tone(3000, 0.2), 32)
	if len(low) != 20 || len(low[0]) != 32 {
		t.Fatalf("%d frames of %d", len(low), len(low[0]))
	}
	bl, bh := argmax32(low[10]), argmax32(high[10])
	if bl >= bh {
		t.Fatalf("peak band of 300 Hz %d, of 3000 Hz %d", bl, bh)
	}
	for _, v := range low[10] {
		if v < -1.01 || v > 1.51 {
			t.Fatalf("value %v outside Whisper's normalised range", v)
		}
	}
	g := GroupFrames(low, 4)
	if len(g) != 5 || len(g[0]) != 128 {
		t.Fatalf("groups: %d of %d", len(g), len(g[0]))
	}
	if LogMel(nil, 8) != nil {
		t.Fatal("frames from no samples")
	}
}

func FuzzParseWAV(f *testing.F) {
	f.Add(EncodeWAV(tone(440, 0.01)))
	f.Add(EncodeWAV(nil))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEdata\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseWAV(data)
		if err != nil {
			if !errors.Is(err, ErrAudioFormat) {
				t.Fatalf("error does not wrap ErrAudioFormat: %v", err)
			}
			return
		}
		if len(s) > MaxAudioSeconds*SampleRate {
			t.Fatalf("%d samples past the limit", len(s))
		}
		_ = LogMel(s[:min(len(s), 800)], 8)
	})
}

func FuzzDecodeImage(f *testing.F) {
	var p bytes.Buffer
	_ = png.Encode(&p, solid(3, 2, color.White))
	f.Add(p.Bytes())
	f.Add([]byte("GIF89a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := DecodeImage(data)
		if err != nil {
			if !errors.Is(err, ErrImageFormat) {
				t.Fatalf("error does not wrap ErrImageFormat: %v", err)
			}
			return
		}
		if b := img.Bounds(); b.Dx()*b.Dy() <= 4096 {
			_ = ImagePatches(img, 8, 4)
		}
	})
}
