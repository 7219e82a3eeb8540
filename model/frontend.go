package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // registers JPEG with image.Decode
	_ "image/png"  // registers PNG with image.Decode
	"math"
	"math/cmplx"
)

// Front-end errors. Each returned error wraps one of these and names the field at fault.
var (
	ErrImageFormat = errors.New("model: unsupported image")
	ErrAudioFormat = errors.New("model: unsupported audio")
)

// Front-end limits, checked before any pixel or sample is decoded.
const (
	MaxImagePixels  = 4096 * 4096
	SampleRate      = 16000 // the only audio rate accepted
	MaxAudioSeconds = 30
)

// DecodeImage decodes PNG or JPEG bytes. Any other format, or an image over MaxImagePixels, is
// refused with an error wrapping ErrImageFormat.
func DecodeImage(data []byte) (image.Image, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: image bytes are not PNG or JPEG (%v)", ErrImageFormat, err)
	}
	if format != "png" && format != "jpeg" {
		return nil, fmt.Errorf("%w: format %q, want png or jpeg", ErrImageFormat, format)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return nil, fmt.Errorf("%w: size %dx%d outside 1..%d pixels", ErrImageFormat, cfg.Width, cfg.Height, MaxImagePixels)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: decode %s: %v", ErrImageFormat, format, err)
	}
	return img, nil
}

// ImagePatches resizes img to size×size (box filter when shrinking, nearest pixel when
// growing), cuts it into (size/patch)² patches in row-major order and returns each patch as
// patch·patch·3 values (RGB, row-major) scaled to [-1, 1]. size must be a multiple of patch.
func ImagePatches(img image.Image, size, patch int) [][]float32 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	px := make([]float32, size*size*3)
	for oy := 0; oy < size; oy++ {
		y0 := oy * h / size
		y1 := max(y0+1, (oy+1)*h/size)
		for ox := 0; ox < size; ox++ {
			x0 := ox * w / size
			x1 := max(x0+1, (ox+1)*w/size)
			var r, g, bl, n float64
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					cr, cg, cb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
					r, g, bl, n = r+float64(cr), g+float64(cg), bl+float64(cb), n+1
				}
			}
			o := (oy*size + ox) * 3
			px[o] = float32(r/n/65535*2 - 1)
			px[o+1] = float32(g/n/65535*2 - 1)
			px[o+2] = float32(bl/n/65535*2 - 1)
		}
	}
	g := size / patch
	out := make([][]float32, 0, g*g)
	for py := 0; py < g; py++ {
		for pxi := 0; pxi < g; pxi++ {
			v := make([]float32, 0, patch*patch*3)
			for y := 0; y < patch; y++ {
				row := ((py*patch+y)*size + pxi*patch) * 3
				v = append(v, px[row:row+patch*3]...)
			}
			out = append(out, v)
		}
	}
	return out
}

// ParseWAV reads a RIFF/WAVE file of 16 kHz mono 16-bit PCM (format 1, or WAVE_FORMAT_EXTENSIBLE
// with the PCM sub-format) and returns its samples in [-1, 1). Anything else is refused with an
// error wrapping ErrAudioFormat that names the field; it never panics on any input.
func ParseWAV(data []byte) ([]float32, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: wav %s", ErrAudioFormat, fmt.Sprintf(format, args...))
	}
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, bad("header: not a RIFF/WAVE file")
	}
	var haveFmt bool
	var pcm []byte
	for p := 12; p+8 <= len(data); {
		id := string(data[p : p+4])
		n := uint64(binary.LittleEndian.Uint32(data[p+4 : p+8]))
		body := uint64(p + 8)
		if body+n > uint64(len(data)) {
			if id == "data" { // streamed writers leave the size at 0xFFFFFFFF: take what is there
				n = uint64(len(data)) - body
			} else {
				return nil, bad("chunk %q: size %d runs past the end of the file", id, n)
			}
		}
		c := data[body : body+n]
		switch id {
		case "fmt ":
			if len(c) < 16 {
				return nil, bad("fmt: chunk of %d bytes, want at least 16", len(c))
			}
			format := binary.LittleEndian.Uint16(c[0:2])
			if format == 0xFFFE && len(c) >= 26 {
				format = binary.LittleEndian.Uint16(c[24:26])
			}
			if format != 1 {
				return nil, bad("fmt.audio_format: %d, want 1 (PCM)", format)
			}
			if ch := binary.LittleEndian.Uint16(c[2:4]); ch != 1 {
				return nil, bad("fmt.channels: %d, want 1 (mono)", ch)
			}
			if sr := binary.LittleEndian.Uint32(c[4:8]); sr != SampleRate {
				return nil, bad("fmt.sample_rate: %d, want %d", sr, SampleRate)
			}
			if bits := binary.LittleEndian.Uint16(c[14:16]); bits != 16 {
				return nil, bad("fmt.bits_per_sample: %d, want 16", bits)
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, bad("data: chunk comes before fmt")
			}
			pcm = c
		}
		if pcm != nil {
			break
		}
		p = int(body + n + n%2) // chunks are padded to even sizes
	}
	if !haveFmt {
		return nil, bad("fmt: chunk missing")
	}
	if pcm == nil {
		return nil, bad("data: chunk missing")
	}
	if len(pcm)/2 > MaxAudioSeconds*SampleRate {
		return nil, bad("data: %.1f s of audio, over the %d s limit", float64(len(pcm)/2)/SampleRate, MaxAudioSeconds)
	}
	out := make([]float32, len(pcm)/2)
	for i := range out {
		out[i] = float32(int16(binary.LittleEndian.Uint16(pcm[2*i:]))) / 32768
	}
	return out, nil
}

// EncodeWAV writes samples in [-1, 1] as a 16 kHz mono PCM16 WAV file (for tests and the
// synthetic data).
func EncodeWAV(samples []float32) []byte {
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(36 + 2*len(samples)))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1))
	le(uint16(1))
	le(uint32(SampleRate))
	le(uint32(SampleRate * 2))
	le(uint16(2))
	le(uint16(16))
	b.WriteString("data")
	le(uint32(2 * len(samples)))
	for _, s := range samples {
		le(int16(max(-32768, min(32767, math.Round(float64(s)*32767)))))
	}
	return b.Bytes()
}

// Whisper's front end: 25 ms Hann windows every 10 ms, a 512-point FFT, a mel filterbank.
const (
	melWindow = 400
	melHop    = 160
	melFFT    = 512
)

// LogMel returns Whisper-style log-mel frames of samples (16 kHz): one frame of nMels values per
// 10 ms hop, each log10 of the mel power, floored at 8 below the loudest value, then mapped by
// (x+4)/4. An empty input gives no frames.
func LogMel(samples []float32, nMels int) [][]float32 {
	nFrames := (len(samples) + melHop - 1) / melHop
	if nFrames == 0 {
		return nil
	}
	fb := melFilterbank(nMels)
	win := make([]float64, melWindow)
	for i := range win {
		win[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/melWindow) // periodic Hann
	}
	frames := make([][]float32, nFrames)
	buf := make([]complex128, melFFT)
	power := make([]float64, melFFT/2+1)
	top := math.Inf(-1)
	logs := make([][]float64, nFrames)
	for f := 0; f < nFrames; f++ {
		for i := range buf {
			buf[i] = 0
		}
		for i := 0; i < melWindow; i++ {
			if j := f*melHop + i - melWindow/2; j >= 0 && j < len(samples) {
				buf[i] = complex(float64(samples[j])*win[i], 0)
			}
		}
		fft(buf)
		for k := range power {
			a := cmplx.Abs(buf[k])
			power[k] = a * a
		}
		l := make([]float64, nMels)
		for m := 0; m < nMels; m++ {
			var s float64
			for k, w := range fb[m] {
				s += w * power[k]
			}
			l[m] = math.Log10(max(s, 1e-10))
			top = max(top, l[m])
		}
		logs[f] = l
	}
	for f, l := range logs {
		fr := make([]float32, nMels)
		for m, v := range l {
			fr[m] = float32((max(v, top-8) + 4) / 4)
		}
		frames[f] = fr
	}
	return frames
}

// GroupFrames concatenates every k consecutive frames into one vector (the last group padded
// with zeros), so that one audio position of the model covers k·10 ms.
func GroupFrames(frames [][]float32, k int) [][]float32 {
	if len(frames) == 0 {
		return nil
	}
	n := len(frames[0])
	var out [][]float32
	for i := 0; i < len(frames); i += k {
		v := make([]float32, n*k)
		for j := 0; j < k && i+j < len(frames); j++ {
			copy(v[j*n:], frames[i+j])
		}
		out = append(out, v)
	}
	return out
}

func hzToMel(f float64) float64 { return 2595 * math.Log10(1+f/700) }
func melToHz(m float64) float64 { return 700 * (math.Pow(10, m/2595) - 1) }

// melFilterbank returns nMels triangular filters over the melFFT/2+1 power bins, from 0 Hz to
// the Nyquist rate, area-normalised (Slaney).
func melFilterbank(nMels int) [][]float64 {
	nb := melFFT/2 + 1
	lo, hi := hzToMel(0), hzToMel(SampleRate/2)
	pts := make([]float64, nMels+2)
	for i := range pts {
		pts[i] = melToHz(lo + (hi-lo)*float64(i)/float64(nMels+1))
	}
	fb := make([][]float64, nMels)
	for m := 0; m < nMels; m++ {
		fb[m] = make([]float64, nb)
		l, c, r := pts[m], pts[m+1], pts[m+2]
		for k := 0; k < nb; k++ {
			f := float64(k) * SampleRate / melFFT
			var w float64
			if f > l && f <= c {
				w = (f - l) / (c - l)
			} else if f > c && f < r {
				w = (r - f) / (r - c)
			}
			fb[m][k] = w * 2 / (r - l)
		}
	}
	return fb
}

// fft is an in-place iterative radix-2 FFT; len(a) must be a power of two.
func fft(a []complex128) {
	n := len(a)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			a[i], a[j] = a[j], a[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		w := cmplx.Exp(complex(0, -2*math.Pi/float64(size)))
		for s := 0; s < n; s += size {
			wk := complex(1, 0)
			for k := 0; k < size/2; k++ {
				u, v := a[s+k], a[s+k+size/2]*wk
				a[s+k], a[s+k+size/2] = u+v, u-v
				wk *= w
			}
		}
	}
}
